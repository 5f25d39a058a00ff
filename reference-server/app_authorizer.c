/* The authorizer app (Authorizer role): allows a request carrying
 * "Authorization: Bearer fcgispec" and passes a variable back; denies others. */
#include <string.h>

#include "fcgi_request.h"

#define AUTHORIZER_TOKEN "Bearer fcgispec"

static void authorizer_start(struct fcgi_request *req)
{
    size_t len;
    const uint8_t *auth = fcgi_request_param(req, "HTTP_AUTHORIZATION", &len);
    bool allowed = auth && len == strlen(AUTHORIZER_TOKEN) && memcmp(auth, AUTHORIZER_TOKEN, len) == 0;
    const char *answer = !allowed ? "Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\ndenied\n"
                         : fault_on(req->faults, FAULT_AUTHORIZER_VARIABLES_DROPPED) ? "Status: 200 OK\r\n\r\n"
                                                                                   : "Status: 200 OK\r\nVariable-FCGISPEC_USER: probe\r\n\r\n";
    fcgi_request_write(req, FCGI_STDOUT, answer, strlen(answer));
    fcgi_request_finish(req, 0);
}

static void authorizer_input(struct fcgi_request *req, uint8_t type, const uint8_t *data, size_t len)
{
    (void)req, (void)type, (void)data, (void)len; /* answered from PARAMS alone */
}

static void authorizer_nothing(struct fcgi_request *req) { (void)req; }

const struct fcgi_app app_authorizer = {
    .name = "authorizer",
    .start = authorizer_start,
    .input = authorizer_input,
    .writable = authorizer_nothing,
    .timer = authorizer_nothing,
    .destroy = authorizer_nothing,
};
