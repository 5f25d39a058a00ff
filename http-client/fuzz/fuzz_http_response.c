/* libFuzzer target for the HTTP response parser.
 *
 * Input: byte 0 holds flags (bit 0: the request was HEAD, bit 1: EOF after the
 * input), byte 1 a split step, byte 2 a max_data; the rest is the response
 * stream. Besides not crashing (ASan/UBSan), the parser must give the same
 * result fed whole and fed in that split, never point body data outside the
 * input, never consume past DONE, and deliver at most what framing allows. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/parse_run.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_http_response: invariant broken: %s\n", what);
    abort();
}

static struct parse_result whole, split;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int is_head = data[0] & 1, eof = (data[0] >> 1) & 1;
    size_t step = data[1] % 17, max_data = data[2] % 9;
    size_t len = size - 3;
    unsigned char *in = malloc(len ? len : 1); /* exact size: ASan sees overreads */
    if (!in)
        return 0;
    memcpy(in, data + 3, len);
    parse_run(in, len, is_head, 0, 0, eof, &whole);
    parse_run(in, len, is_head, step, max_data, eof, &split);
    if (whole.bad_pointer || split.bad_pointer)
        fail("data pointer outside the input or consumed too much");
    if (!parse_result_equal(&whole, &split))
        fail("split input parses differently");
    if (whole.done && whole.err)
        fail("done and error");
    if (whole.headers > 1)
        fail("more than one final head");
    if (whole.body_len && !whole.headers)
        fail("body without a head");
    if (whole.done && whole.kind == HRP_BODY_NONE && whole.body_len)
        fail("bodiless response with a body");
    if ((is_head || whole.status == 204 || whole.status == 304 || whole.status == 101) && whole.body_len)
        fail("HEAD/204/304/101 with a body");
    if (whole.kind == HRP_BODY_CLOSE && whole.keep_alive)
        fail("close-delimited body kept alive");
    free(in);
    return 0;
}
