/* adapter_protocol: the client adapter line protocol (request lines in, JSON result lines out) for the C adapters,
 * the libcurl adapter (client-adapters/curl) and the reference HTTP client's `adapter` mode (http-client/cli.c).
 * The Python adapters have the same in client-adapters/adapter_protocol.py.
 *
 * Input, one line each (CR/LF stripped; empty lines skipped):
 *   METHOD URL [BODYLEN] [Name:Value]...   BODYLEN only for POST, PUT, PATCH ('x' bytes)
 *   ABANDON URL N      a GET whose caller reads N body bytes, then drops the response
 *   CONCURRENT K       the next K request lines run at once; results in input order
 *   SLEEP MS           wait; no output
 *   CLOSE_IDLE         close the idle pooled connections; no output
 * Output, one line per request line, flushed:
 *   {"status": 200, "body_length": 3, "body_sha256": "...", "error": null, "reused": false, "connects": 1}
 * status and body_sha256 are null on failure, "reused" is left out when unknown.
 *
 * An adapter supplies a run function (perform jobs, fill in their results) and a close_idle function;
 * adapter_serve() does the rest. Plain C and stdio: no HTTP library, no hash, no global state. */
#ifndef FCGISPEC_ADAPTER_PROTOCOL_H
#define FCGISPEC_ADAPTER_PROTOCOL_H

#include <stddef.h>
#include <stdio.h>

#define ADAPTER_MAX_TOKENS 35 /* METHOD URL BODYLEN and 32 Name:Value tokens */
#define ADAPTER_MAX_HEADERS (ADAPTER_MAX_TOKENS - 2) /* a line without BODYLEN has room for one more */
#define ADAPTER_MAX_CONCURRENT 256
#define ADAPTER_MAX_LINE 65536 /* bytes of one input line; a longer one is a request line in error */
#define ADAPTER_ERROR_MAX 512  /* bytes of a result's error text, NUL included */

struct adapter_header {
    const char *name;
    const char *value; /* "" for a token "Name:" */
};

/* One request line, parsed. The strings point into `line`, which the request owns. */
struct adapter_request {
    char *line;
    const char *method; /* "GET", "POST", ...; ABANDON is a GET */
    const char *url;
    size_t body_len;          /* POST, PUT, PATCH: that many 'x' bytes */
    long long abandon_after;  /* ABANDON N: read N body bytes, then drop the response; -1: the whole body */
    struct adapter_header headers[ADAPTER_MAX_HEADERS];
    size_t nheaders;
    const char *parse_error; /* set: the line is not a valid request and this is its result's error */
};

/* What one request line gives: the output line's fields. */
struct adapter_result {
    long status;                    /* -1: null */
    unsigned long long body_length; /* body bytes the caller took (so far, when an error cut it short) */
    char sha256[65];                /* hex digest of those bytes; empty: null */
    char error[ADAPTER_ERROR_MAX];  /* empty: null */
    int reused;                     /* -1: unknown, left out */
    unsigned long connects;         /* connections the client has opened so far */
};

struct adapter_job {
    struct adapter_request req;
    struct adapter_result res;
};

struct adapter_ops {
    const char *name; /* the program, for messages on stderr */
    /* Performs jobs[0..n) at once (n is 1 for a plain request line, at most ADAPTER_MAX_CONCURRENT) and fills in
     * each job's result; a job with req.parse_error set is not performed, its result carries that error. */
    void (*run)(void *ctx, struct adapter_job *jobs, size_t n);
    /* CLOSE_IDLE: closes the client's idle pooled connections. */
    void (*close_idle)(void *ctx);
};

/* Reads input lines from `in` until EOF, runs them through `ops` and writes the result lines to `out`.
 * Returns 0 at EOF, 1 when out of memory (after a message on stderr). */
int adapter_serve(FILE *in, FILE *out, const struct adapter_ops *ops, void *ctx);

/* Parses a request line into `job` (which takes ownership of the malloc'ed `line`) and sets its result to the
 * empty one: status and sha256 null, no error, reused unknown. */
void adapter_job_parse(struct adapter_job *job, char *line);

/* 1 for the methods whose request line may carry a BODYLEN (POST, PUT, PATCH). */
int adapter_method_has_body(const char *method);

/* How many of the next n body bytes the caller takes: n, or fewer once ABANDON's N is near (0: no more). */
size_t adapter_body_want(const struct adapter_job *job, size_t n);

/* Sets res->error (printf-style, cut to ADAPTER_ERROR_MAX - 1 bytes). */
void adapter_result_error(struct adapter_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sets res->sha256 to the hex form of the digest d[0..n) (at most 32 bytes are used). */
void adapter_result_sha256(struct adapter_result *res, const unsigned char *d, size_t n);

/* Writes the result's output line to `out` and flushes it. */
void adapter_result_print(FILE *out, const struct adapter_result *res);

/* A decimal number of at most `max`, digits only: 0 and *out set, or -1. */
int adapter_parse_uint(const char *s, unsigned long max, unsigned long *out);

/* --timeout SECONDS: a number above 0 and at most 86400: 0 and *ms set, or -1. */
int adapter_parse_seconds(const char *s, unsigned long *ms);

/* Reads one line (CR/LF stripped) into a malloc'ed string; NULL at EOF. A line longer than ADAPTER_MAX_LINE is
 * cut there, the rest of it read and dropped, and *too_long set. */
char *adapter_read_line(FILE *in, int *too_long);

#endif
