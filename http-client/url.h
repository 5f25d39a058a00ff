/* URL parsing for the client: http and https absolute URLs only. Pure. */
#ifndef FCGISPEC_HTTPC_URL_H
#define FCGISPEC_HTTPC_URL_H

#include <stdint.h>

#include "httpc.h"

#define URL_MAX_HOST 255
#define URL_MAX_TARGET 8192

struct url {
    int tls;                        /* https */
    char host[URL_MAX_HOST + 1];    /* lower-cased; IPv6 literal without brackets */
    int host_is_ipv6;               /* written as [v6] */
    uint16_t port;                  /* explicit or the scheme's default */
    int port_explicit;
    char target[URL_MAX_TARGET + 1]; /* path and query, "/" when empty; no fragment */
};

/* scheme://host[:port][/path][?query][#fragment]; userinfo is refused.
 * Returns HTTPC_OK, HTTPC_E_URL or HTTPC_E_SCHEME. */
httpc_error url_parse(const char *s, struct url *out);

/* "host", "host:port" (port only when not the default), "[v6]:port": for Host. */
void url_authority(const struct url *u, char *buf, size_t size);

/* "http://host:port" or "https://host:port": the pool key of the origin. */
void url_origin(const struct url *u, char *buf, size_t size);

#endif
