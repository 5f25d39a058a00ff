/* Unit tests for the URL parser. */
#include <stdio.h>
#include <string.h>

#include "test_main.h"
#include "url.h"

static void ok(struct test_counts *tc, const char *s, int tls, const char *host, unsigned port, const char *target,
               const char *authority, const char *origin)
{
    struct url u;
    char buf[400];
    if (!CHECK(url_parse(s, &u) == HTTPC_OK)) {
        printf("    url: %s\n", s);
        return;
    }
    CHECK_EQ_U(u.tls, tls);
    CHECK(strcmp(u.host, host) == 0);
    CHECK_EQ_U(u.port, port);
    if (!CHECK(strcmp(u.target, target) == 0))
        printf("    target '%s' wanted '%s'\n", u.target, target);
    url_authority(&u, buf, sizeof(buf));
    if (!CHECK(strcmp(buf, authority) == 0))
        printf("    authority '%s' wanted '%s'\n", buf, authority);
    url_origin(&u, buf, sizeof(buf));
    if (!CHECK(strcmp(buf, origin) == 0))
        printf("    origin '%s' wanted '%s'\n", buf, origin);
}

static void bad(struct test_counts *tc, const char *s, httpc_error e)
{
    struct url u;
    httpc_error got = url_parse(s, &u);
    if (!CHECK(got == e))
        printf("    url '%s': got %d wanted %d\n", s, got, e);
}

int main(void)
{
    struct test_counts counts = {0, 0};
    struct test_counts *tc = &counts;
    ok(tc, "http://example.com", 0, "example.com", 80, "/", "example.com", "http://example.com:80");
    ok(tc, "http://Example.COM/", 0, "example.com", 80, "/", "example.com", "http://example.com:80");
    ok(tc, "HTTPS://example.com/a/b?c=d#frag", 1, "example.com", 443, "/a/b?c=d", "example.com",
       "https://example.com:443");
    ok(tc, "http://127.0.0.1:8080/x", 0, "127.0.0.1", 8080, "/x", "127.0.0.1:8080", "http://127.0.0.1:8080");
    ok(tc, "http://localhost:80/", 0, "localhost", 80, "/", "localhost", "http://localhost:80");
    ok(tc, "https://localhost:8443?q=1", 1, "localhost", 8443, "/?q=1", "localhost:8443", "https://localhost:8443");
    ok(tc, "http://[::1]:9000/p", 0, "::1", 9000, "/p", "[::1]:9000", "http://[::1]:9000");
    ok(tc, "https://[fe80::1]/", 1, "fe80::1", 443, "/", "[fe80::1]", "https://[fe80::1]:443");
    ok(tc, "http://h:65535/%20", 0, "h", 65535, "/%20", "h:65535", "http://h:65535");
    ok(tc, "http://h:/", 0, "h", 80, "/", "h", "http://h:80");
    ok(tc, "http://h#only-fragment", 0, "h", 80, "/", "h", "http://h:80");
    bad(tc, "ftp://example.com/", HTTPC_E_SCHEME);
    bad(tc, "example.com/", HTTPC_E_URL);
    bad(tc, "", HTTPC_E_URL);
    bad(tc, "http://", HTTPC_E_URL);
    bad(tc, "http:///path", HTTPC_E_URL);
    bad(tc, "http://h:0/", HTTPC_E_URL);
    bad(tc, "http://h:65536/", HTTPC_E_URL);
    bad(tc, "http://h:123456/", HTTPC_E_URL);
    bad(tc, "http://h:8x/", HTTPC_E_URL);
    bad(tc, "http://user:pw@h/", HTTPC_E_URL);
    bad(tc, "http://h/a b", HTTPC_E_URL);
    bad(tc, "http://h/a\r\nX: y", HTTPC_E_URL);
    bad(tc, "http://h/\x80", HTTPC_E_URL);
    bad(tc, "http://h_ost!/", HTTPC_E_URL);
    bad(tc, "http://[::1/", HTTPC_E_URL);
    bad(tc, "http://[]/", HTTPC_E_URL);
    bad(tc, "http://[::1]x/", HTTPC_E_URL);
    bad(tc, "http://[zz::1]/", HTTPC_E_URL);
    {
        char longhost[400] = "http://";
        memset(longhost + 7, 'a', 300);
        longhost[307] = '\0';
        bad(tc, longhost, HTTPC_E_URL);
        static char longpath[9000] = "http://h/";
        memset(longpath + 9, 'p', 8500);
        bad(tc, longpath, HTTPC_E_URL);
    }
    return test_finish(tc);
}
