/* fcgispec-responder: the reference FastCGI application of fcgispec. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "faults.h"
#include "fcgi_request.h"
#include "listener.h"
#include "server.h"
#include "workers.h"

#define MAX_LISTENERS 8
#define FD_LIMIT_WANTED 65536

static void usage(FILE *out)
{
    fputs("usage: fcgispec-responder [options]\n"
          "  --listen tcp:HOST:PORT | unix:PATH   listen here (repeatable; port 0 picks a free one);\n"
          "                          without it, a listening socket on fd 0 is used\n"
          "  --fault NAME            replay a known bug (repeatable); --fault list shows them\n"
          "  --no-mpx                one request at a time per connection (FCGI_MPXS_CONNS=0):\n"
          "                          a second concurrent request gets CANT_MPX_CONN\n"
          "  --max-conns N           connections served; more get OVERLOADED (default 1024)\n"
          "  --max-reqs N            concurrent requests; more get OVERLOADED (default 4096)\n"
          "  --max-params-bytes N    limit of one request's PARAMS stream (default 1048576)\n"
          "  --roles LIST            roles served, of responder,authorizer,filter (default all)\n"
          "  --app NAME              the Responder's application: probe (default: reports what it\n"
          "                          received, steered by QUERY_STRING) or hello (an ordinary page,\n"
          "                          no probe report, with a Date header, a cookie and a visit counter)\n"
          "  --quiet                 no per-connection log lines\n"
          "  --workers N             N event-loop processes sharing the listeners and the limits\n"
          "                          (default 1)\n"
          "Each listener's address is printed on stdout as 'listening ADDRESS'.\n"
          "The environment variable FCGI_WEB_SERVER_ADDRS limits the peers accepted.\n",
          out);
}

static bool parse_count(const char *text, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v = strtoul(text, &end, 10);
    if (!*text || *end || v == 0 || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_roles(const char *list, unsigned *mask)
{
    char copy[128];
    if (strlen(list) >= sizeof(copy))
        return false;
    strcpy(copy, list);
    *mask = 0;
    char *save = NULL;
    for (char *role = strtok_r(copy, ",", &save); role; role = strtok_r(NULL, ",", &save)) {
        if (strcmp(role, "responder") == 0)
            *mask |= ROLE_MASK_RESPONDER;
        else if (strcmp(role, "authorizer") == 0)
            *mask |= ROLE_MASK_AUTHORIZER;
        else if (strcmp(role, "filter") == 0)
            *mask |= ROLE_MASK_FILTER;
        else
            return false;
    }
    return true;
}

/* The Responder role's application: NULL is the probe app (the default). */
static bool parse_app(const char *name, const struct fcgi_app **app)
{
    if (strcmp(name, "probe") == 0)
        *app = NULL;
    else if (strcmp(name, "hello") == 0)
        *app = &app_hello;
    else
        return false;
    return true;
}

/* Each connection is a descriptor: raise the soft limit to the hard one (capped),
 * so that --max-conns, not a default of 1024 descriptors, is what limits us. */
static void raise_fd_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0)
        return;
    rlim_t wanted = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > FD_LIMIT_WANTED ? FD_LIMIT_WANTED
                                                                                          : limit.rlim_max;
    if (limit.rlim_cur < wanted) {
        limit.rlim_cur = wanted;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

/* Parses the command line, opens the listeners (or takes fd 0) and runs the responder. */
int main(int argc, char **argv)
{
    struct server_config config = {
        .limits = fcgi_limits_default(),
        .web_server_addrs = getenv("FCGI_WEB_SERVER_ADDRS"),
        .workers = 1,
    };
    const char *listen_specs[MAX_LISTENERS];
    size_t listen_count = 0;
    bool quiet = false;
    enum { OPT_LISTEN = 1, OPT_FAULT, OPT_NO_MPX, OPT_MAX_CONNS, OPT_MAX_REQS, OPT_MAX_PARAMS, OPT_ROLES, OPT_APP, OPT_QUIET, OPT_WORKERS, OPT_HELP };
    static const struct option options[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"fault", required_argument, NULL, OPT_FAULT},
        {"no-mpx", no_argument, NULL, OPT_NO_MPX},
        {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
        {"max-reqs", required_argument, NULL, OPT_MAX_REQS},
        {"max-params-bytes", required_argument, NULL, OPT_MAX_PARAMS},
        {"roles", required_argument, NULL, OPT_ROLES},
        {"app", required_argument, NULL, OPT_APP},
        {"quiet", no_argument, NULL, OPT_QUIET},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int opt;
    unsigned long value;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_LISTEN:
            if (listen_count == MAX_LISTENERS) {
                fprintf(stderr, "fcgispec-responder: at most %d listeners\n", MAX_LISTENERS);
                return 2;
            }
            listen_specs[listen_count++] = optarg;
            break;
        case OPT_FAULT: {
            enum fault f;
            if (strcmp(optarg, "list") == 0) {
                fault_print_list(stdout);
                return 0;
            }
            if (!fault_parse(optarg, &f)) {
                fprintf(stderr, "fcgispec-responder: unknown fault '%s' (see --fault list)\n", optarg);
                return 2;
            }
            config.limits.faults |= (fault_set)1 << f;
            break;
        }
        case OPT_NO_MPX:
            config.limits.mpx = false;
            break;
        case OPT_MAX_CONNS:
        case OPT_MAX_REQS:
        case OPT_MAX_PARAMS:
            if (!parse_count(optarg, opt == OPT_MAX_PARAMS ? 64ul << 20 : 1000000ul, &value)) {
                fprintf(stderr, "fcgispec-responder: bad number '%s'\n", optarg);
                return 2;
            }
            if (opt == OPT_MAX_CONNS)
                config.limits.max_conns = (unsigned)value;
            else if (opt == OPT_MAX_REQS)
                config.limits.max_reqs = (unsigned)value;
            else
                config.limits.max_params_bytes = value;
            break;
        case OPT_ROLES:
            if (!parse_roles(optarg, &config.limits.roles)) {
                fprintf(stderr, "fcgispec-responder: roles are responder,authorizer,filter\n");
                return 2;
            }
            break;
        case OPT_APP:
            if (!parse_app(optarg, &config.limits.responder_app)) {
                fprintf(stderr, "fcgispec-responder: --app is probe or hello\n");
                return 2;
            }
            break;
        case OPT_QUIET:
            quiet = true;
            break;
        case OPT_WORKERS:
            if (!parse_count(optarg, MAX_WORKERS, &value)) {
                fprintf(stderr, "fcgispec-responder: --workers takes 1 to %d\n", MAX_WORKERS);
                return 2;
            }
            config.workers = (unsigned)value;
            break;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (!quiet)
        config.limits.log = server_log_conn;
    raise_fd_limit();

    struct listener listeners[MAX_LISTENERS];
    for (size_t i = 0; i < listen_count; i++) {
        char err[256];
        if (!listener_open(listen_specs[i], config.workers > 1, &listeners[i], err, sizeof(err))) {
            fprintf(stderr, "fcgispec-responder: %s\n", err);
            while (i > 0)
                listener_close(&listeners[--i]);
            return 1;
        }
        config.listener_count++;
    }
    if (listen_count == 0 && fault_on(config.limits.faults, FAULT_FD0_IGNORED)) {
        fprintf(stderr, "fcgispec-responder: not serving fd 0 (fault fd0-ignored)\n");
    } else if (listen_count == 0) {
        if (!listener_inherit_fd0(&listeners[0])) {
            fprintf(stderr, "fcgispec-responder: no listener: give --listen, or start it with a listening "
                            "socket on fd 0\n");
            return 2;
        }
        config.listener_count = 1;
    }
    for (size_t i = 0; i < config.listener_count; i++)
        printf("listening %s\n", listeners[i].address);
    fflush(stdout);
    config.listeners = listeners;
    int status = workers_run(&config);
    for (size_t i = 0; i < config.listener_count; i++)
        listener_close(&listeners[i]);
    return status;
}
