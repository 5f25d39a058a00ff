/* URL parsing (RFC 3986 subset for http/https request targets). */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_reg_name_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
}

static int is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f; /* no spaces, no controls, no raw non-ASCII */
}

/* Splits an http or https URL into scheme, host, port and target. */
httpc_error url_parse(const char *s, struct url *out)
{
    memset(out, 0, sizeof(*out));
    const char *p;
    if (strncasecmp(s, "http://", 7) == 0) {
        out->tls = 0;
        p = s + 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        out->tls = 1;
        p = s + 8;
    } else {
        const char *colon = strstr(s, "://");
        return colon ? HTTPC_E_SCHEME : HTTPC_E_URL;
    }
    /* authority ends at '/', '?', '#' or the end */
    size_t alen = strcspn(p, "/?#");
    const char *auth = p, *aend = p + alen;
    if (memchr(auth, '@', alen))
        return HTTPC_E_URL; /* userinfo: not supported */
    const char *hend, *port_start = NULL;
    if (alen > 0 && auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close || close == auth + 1)
            return HTTPC_E_URL;
        size_t hl = (size_t)(close - auth - 1);
        if (hl > URL_MAX_HOST)
            return HTTPC_E_URL;
        for (const char *c = auth + 1; c < close; c++)
            if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
                return HTTPC_E_URL;
        memcpy(out->host, auth + 1, hl);
        out->host[hl] = '\0';
        out->host_is_ipv6 = 1;
        hend = close + 1;
        if (hend < aend) {
            if (*hend != ':')
                return HTTPC_E_URL;
            port_start = hend + 1;
        }
    } else {
        const char *colon = memchr(auth, ':', alen);
        hend = colon ? colon : aend;
        size_t hl = (size_t)(hend - auth);
        if (hl == 0 || hl > URL_MAX_HOST)
            return HTTPC_E_URL;
        for (size_t i = 0; i < hl; i++) {
            unsigned char c = (unsigned char)auth[i];
            if (!is_reg_name_char(c))
                return HTTPC_E_URL;
            out->host[i] = (char)tolower(c);
        }
        out->host[hl] = '\0';
        if (colon)
            port_start = colon + 1;
    }
    out->port = out->tls ? 443 : 80;
    if (port_start && port_start < aend) {
        unsigned long v = 0;
        for (const char *c = port_start; c < aend; c++) {
            if (*c < '0' || *c > '9' || c - port_start >= 5)
                return HTTPC_E_URL;
            v = v * 10 + (unsigned long)(*c - '0');
        }
        if (v == 0 || v > 65535)
            return HTTPC_E_URL;
        out->port = (uint16_t)v;
        out->port_explicit = 1;
    }
    /* target: path and query, fragment dropped */
    const char *t = aend;
    size_t tl = strcspn(t, "#");
    for (size_t i = 0; i < tl; i++)
        if (!is_target_char((unsigned char)t[i]))
            return HTTPC_E_URL;
    if (t[tl] == '#')
        for (const char *c = t + tl + 1; *c; c++)
            if (!is_target_char((unsigned char)*c))
                return HTTPC_E_URL;
    size_t off = 0;
    if (tl == 0 || t[0] == '?')
        out->target[off++] = '/';
    if (off + tl > URL_MAX_TARGET)
        return HTTPC_E_URL;
    memcpy(out->target + off, t, tl);
    out->target[off + tl] = '\0';
    return HTTPC_OK;
}

void url_authority(const struct url *u, char *buf, size_t size)
{
    int dflt = u->port == (u->tls ? 443 : 80);
    const char *l = u->host_is_ipv6 ? "[" : "", *r = u->host_is_ipv6 ? "]" : "";
    if (dflt)
        snprintf(buf, size, "%s%s%s", l, u->host, r);
    else
        snprintf(buf, size, "%s%s%s:%u", l, u->host, r, (unsigned)u->port);
}

void url_origin(const struct url *u, char *buf, size_t size)
{
    const char *l = u->host_is_ipv6 ? "[" : "", *r = u->host_is_ipv6 ? "]" : "";
    snprintf(buf, size, "%s://%s%s%s:%u", u->tls ? "https" : "http", l, u->host, r, (unsigned)u->port);
}
