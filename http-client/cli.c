/* fcgispec-http-client: the command line of the reference HTTP/1.1 client.
 *
 *   fcgispec-http-client adapter [OPTIONS]   the client adapter protocol (stdin/stdout)
 *   fcgispec-http-client fetch [OPTIONS] URL...  bodies to stdout, one client for all URLs
 *
 * Options: --cacert PATH, --max-idle-per-host N, --max-idle-total N,
 *          --idle-timeout MS, --timeout SECONDS, --max-retries N
 *
 * Adapter protocol: one request line in, one JSON line out (flushed), in order:
 *   METHOD URL [BODYLEN] [Name:Value]...   BODYLEN only for POST, PUT, PATCH ('x' bytes)
 *   ABANDON URL N      GET, read N body bytes, drop the response
 *   CONCURRENT K       the next K request lines run at once; results in input order
 *   SLEEP MS           no output
 *   CLOSE_IDLE         close idle pooled connections; no output
 * Output: {"status": 200, "body_length": 3, "body_sha256": "...", "error": null,
 *          "reused": false, "connects": 1}
 * The lines are read, parsed and printed by http-client/adapter-protocol (shared with fcgispec-curl-adapter). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "adapter_protocol.h"
#include "httpc.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: fcgispec-http-client adapter [OPTIONS]\n"
            "       fcgispec-http-client fetch [OPTIONS] URL...\n"
            "options: --cacert PATH  --max-idle-per-host N  --max-idle-total N\n"
            "         --idle-timeout MS  --timeout SECONDS  --max-retries N\n");
}

/* Performs one request line's job on the client and fills in its result. */
static void job_run(httpc_client *cl, struct adapter_job *j)
{
    const struct adapter_request *r = &j->req;
    struct adapter_result *res = &j->res;
    struct httpc_stats st;
    if (r->parse_error) {
        adapter_result_error(res, "%s", r->parse_error);
        httpc_client_stats(cl, &st);
        res->connects = st.connects;
        return;
    }
    struct httpc_header headers[ADAPTER_MAX_HEADERS];
    for (size_t i = 0; i < r->nheaders; i++) {
        headers[i].name = r->headers[i].name;
        headers[i].value = r->headers[i].value;
    }
    char *body = NULL;
    if (r->body_len) {
        body = malloc(r->body_len);
        if (!body) {
            adapter_result_error(res, "%s", httpc_strerror(HTTPC_E_NOMEM));
            return;
        }
        memset(body, 'x', r->body_len);
    }
    struct httpc_request req = {r->method, r->url, headers, r->nheaders, body, r->body_len};
    httpc_response *resp = NULL;
    struct httpc_request_info info;
    httpc_error e = httpc_request(cl, &req, &resp, &info);
    free(body);
    res->reused = info.reused;
    if (e != HTTPC_OK) {
        adapter_result_error(res, "%s", httpc_strerror(e));
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        unsigned char buf[16384];
        for (;;) {
            size_t want = adapter_body_want(j, sizeof(buf));
            if (want == 0)
                break;
            ssize_t n = httpc_response_read(resp, buf, want, &e);
            if (n < 0) {
                adapter_result_error(res, "%s", httpc_strerror(e));
                break;
            }
            if (n == 0)
                break;
            EVP_DigestUpdate(md, buf, (size_t)n);
            res->body_length += (unsigned long long)n;
        }
        if (!res->error[0]) {
            unsigned char d[32];
            unsigned int dl = 0;
            EVP_DigestFinal_ex(md, d, &dl);
            adapter_result_sha256(res, d, dl);
            res->status = httpc_response_status(resp);
        }
        EVP_MD_CTX_free(md);
        httpc_response_free(resp);
    }
    httpc_client_stats(cl, &st);
    res->connects = st.connects;
}

struct job_thread_arg {
    httpc_client *cl;
    struct adapter_job *job;
};

static void *job_thread(void *arg)
{
    struct job_thread_arg *a = arg;
    job_run(a->cl, a->job);
    return NULL;
}

/* adapter_ops.run: one job here, several on a thread each (a job whose thread did not start runs here after). */
static void run_jobs(void *ctx, struct adapter_job *jobs, size_t n)
{
    httpc_client *cl = ctx;
    if (n == 1) {
        job_run(cl, &jobs[0]);
        return;
    }
    pthread_t th[ADAPTER_MAX_CONCURRENT];
    struct job_thread_arg args[ADAPTER_MAX_CONCURRENT];
    int started[ADAPTER_MAX_CONCURRENT];
    if (n > ADAPTER_MAX_CONCURRENT)
        n = ADAPTER_MAX_CONCURRENT; /* adapter_serve never asks for more */
    for (size_t i = 0; i < n; i++) {
        args[i] = (struct job_thread_arg){cl, &jobs[i]};
        started[i] = pthread_create(&th[i], NULL, job_thread, &args[i]) == 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (started[i])
            pthread_join(th[i], NULL);
        else
            job_run(cl, &jobs[i]);
    }
}

/* adapter_ops.close_idle */
static void close_idle(void *ctx)
{
    httpc_client_close_idle(ctx);
}

static int run_fetch(httpc_client *cl, int n, char **urls)
{
    int failures = 0;
    for (int i = 0; i < n; i++) {
        struct httpc_request req = {"GET", urls[i], NULL, 0, NULL, 0};
        httpc_response *resp;
        httpc_error e = httpc_request(cl, &req, &resp, NULL);
        if (e != HTTPC_OK) {
            fprintf(stderr, "fcgispec-http-client: %s: %s\n", urls[i], httpc_strerror(e));
            failures++;
            continue;
        }
        char buf[16384];
        ssize_t r;
        while ((r = httpc_response_read(resp, buf, sizeof(buf), &e)) > 0)
            fwrite(buf, 1, (size_t)r, stdout);
        if (r < 0) {
            fprintf(stderr, "fcgispec-http-client: %s: %s\n", urls[i], httpc_strerror(e));
            failures++;
        } else if (httpc_response_status(resp) >= 400) {
            failures++;
        }
        fprintf(stderr, "fcgispec-http-client: %s: status %d%s\n", urls[i], httpc_response_status(resp),
                httpc_response_reused(resp) ? " (reused connection)" : "");
        httpc_response_free(resp);
    }
    fflush(stdout);
    struct httpc_stats st;
    httpc_client_stats(cl, &st);
    fprintf(stderr, "fcgispec-http-client: %d requests, %lu connections opened, %lu reused, %lu retries\n", n,
            st.connects, st.reuses, st.retries);
    return failures ? 1 : 0;
}

/* Runs the adapter or the fetch command with the options given. */
int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write(2) */
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *mode = argv[1];
    if (strcmp(mode, "adapter") != 0 && strcmp(mode, "fetch") != 0) {
        usage();
        return 2;
    }
    struct httpc_config cfg;
    httpc_config_default(&cfg);
    int i = 2;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long v;
        if (strcmp(opt, "--") == 0) {
            i++;
            break;
        }
        if (!val) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(opt, "--cacert") == 0) {
            cfg.cacert = val;
        } else if (strcmp(opt, "--max-idle-per-host") == 0 && adapter_parse_uint(val, 100000, &v) == 0) {
            cfg.max_idle_per_host = (unsigned)v;
        } else if (strcmp(opt, "--max-idle-total") == 0 && adapter_parse_uint(val, 100000, &v) == 0) {
            cfg.max_idle_total = (unsigned)v;
        } else if (strcmp(opt, "--idle-timeout") == 0 && adapter_parse_uint(val, 86400000ul, &v) == 0) {
            cfg.idle_timeout_ms = (unsigned)v;
        } else if (strcmp(opt, "--max-retries") == 0 && adapter_parse_uint(val, 10, &v) == 0) {
            cfg.max_retries = (unsigned)v;
        } else if (strcmp(opt, "--timeout") == 0 && adapter_parse_seconds(val, &v) == 0) {
            cfg.timeout_ms = (unsigned)v;
            cfg.connect_timeout_ms = cfg.timeout_ms;
        } else {
            usage();
            return 2;
        }
    }
    httpc_error e;
    httpc_client *cl = httpc_client_new(&cfg, &e);
    if (!cl) {
        fprintf(stderr, "fcgispec-http-client: %s\n", httpc_strerror(e));
        return 1;
    }
    int rc;
    if (strcmp(mode, "adapter") == 0) {
        if (i != argc) {
            usage();
            httpc_client_free(cl);
            return 2;
        }
        static const struct adapter_ops ops = {"fcgispec-http-client", run_jobs, close_idle};
        rc = adapter_serve(stdin, stdout, &ops, cl);
    } else {
        rc = run_fetch(cl, argc - i, argv + i);
    }
    httpc_client_free(cl);
    return rc;
}
