/* libFuzzer target for the record codec: every decoder over arbitrary bytes.
 *
 * The input is copied into a heap buffer of exactly its size, so ASan sees any
 * read past the end. Besides not crashing, the decoders must agree with the
 * encoders: what decodes re-encodes to the same meaning, declared lengths never
 * point outside the buffer, and a name-value walk over the whole input always
 * makes progress. A violation aborts, which libFuzzer reports with the input. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fcgi_codec.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_codec: invariant broken: %s\n", what);
    abort();
}

static void check_header(const uint8_t *buf, size_t len)
{
    struct fcgi_header h;
    enum fcgi_decode_status st = fcgi_header_decode(buf, len, &h);
    if (len < FCGI_HEADER_LEN) {
        if (st != FCGI_DECODE_NEED_MORE)
            fail("short header not reported as NEED_MORE");
        return;
    }
    if (st != FCGI_DECODE_OK)
        fail("8 bytes do not decode as a header");
    uint8_t again[FCGI_HEADER_LEN];
    fcgi_header_encode(&h, again);
    /* Byte 7 is reserved: ignored on decode, written as 0. */
    if (memcmp(again, buf, 7) != 0 || again[7] != 0)
        fail("header does not re-encode to the same bytes");
    if (fcgi_record_size(&h) != FCGI_HEADER_LEN + (size_t)h.content_length + h.padding_length)
        fail("record size disagrees with the header");
    char name[32];
    const char *type_name = fcgi_type_name(h.type, name, sizeof(name));
    if (!type_name || !*type_name)
        fail("no type name");
}

/* Walks the whole buffer as a PARAMS stream, as the connection does. */
static void check_nv_walk(const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        struct fcgi_nv nv;
        size_t used = 0;
        enum fcgi_decode_status st = fcgi_nv_decode(buf + pos, len - pos, &nv, &used);
        if (st == FCGI_DECODE_NEED_MORE || st == FCGI_DECODE_BAD_LENGTH)
            return;
        if (st != FCGI_DECODE_OK)
            fail("unexpected nv status");
        if (used < 2 || used > len - pos)
            fail("nv consumed outside the buffer");
        const uint8_t *end = buf + len;
        if (nv.name < buf + pos || nv.name_len > (size_t)(end - nv.name) || nv.value != nv.name + nv.name_len ||
            nv.value_len > (size_t)(end - nv.value) || nv.value + nv.value_len != buf + pos + used)
            fail("nv points outside its encoding");
        /* Canonical re-encoding decodes to the same pair. */
        size_t size = fcgi_nv_encoded_size(nv.name_len, nv.value_len);
        if (size > used)
            fail("canonical encoding longer than a valid one");
        uint8_t *copy = malloc(size);
        if (!copy)
            return;
        if (fcgi_nv_encode(nv.name, nv.name_len, nv.value, nv.value_len, copy, size) != size)
            fail("decoded pair does not re-encode");
        struct fcgi_nv back;
        size_t back_used;
        if (fcgi_nv_decode(copy, size, &back, &back_used) != FCGI_DECODE_OK || back_used != size ||
            back.name_len != nv.name_len || back.value_len != nv.value_len ||
            memcmp(back.name, nv.name, nv.name_len) != 0 || memcmp(back.value, nv.value, nv.value_len) != 0)
            fail("re-encoded pair decodes differently");
        /* One byte short must never decode as OK. */
        if (fcgi_nv_decode(copy, size - 1, &back, &back_used) == FCGI_DECODE_OK)
            fail("truncated pair decodes");
        free(copy);
        pos += used;
    }
}

static void check_fixed_bodies(const uint8_t *buf, size_t len)
{
    struct fcgi_begin_request b;
    struct fcgi_end_request e;
    enum fcgi_decode_status bs = fcgi_begin_request_decode(buf, len, &b);
    enum fcgi_decode_status es = fcgi_end_request_decode(buf, len, &e);
    if (len != 8) {
        if (bs != FCGI_DECODE_BAD_SIZE || es != FCGI_DECODE_BAD_SIZE)
            fail("wrong-size body accepted");
        return;
    }
    if (bs != FCGI_DECODE_OK || es != FCGI_DECODE_OK)
        fail("8-byte body refused");
    uint8_t again[8];
    fcgi_begin_request_encode(&b, again);
    if (memcmp(again, buf, 3) != 0)
        fail("BEGIN_REQUEST does not round-trip");
    fcgi_end_request_encode(&e, again);
    if (memcmp(again, buf, 5) != 0)
        fail("END_REQUEST does not round-trip");
}

/* The input as one record's content: encode, then decode the header back. */
static void check_record_encode(const uint8_t *buf, size_t len, uint8_t type, uint16_t id)
{
    if (len > FCGI_MAX_CONTENT)
        return;
    size_t cap = FCGI_HEADER_LEN + len + 7;
    uint8_t *out = malloc(cap);
    if (!out)
        return;
    size_t n = fcgi_record_encode(type, id, len ? buf : NULL, len, out, cap);
    struct fcgi_header h;
    if (n == 0 || fcgi_header_decode(out, n, &h) != FCGI_DECODE_OK || fcgi_record_size(&h) != n ||
        h.type != type || h.request_id != id || h.content_length != len || (n % 8) != 0 ||
        (len && memcmp(out + FCGI_HEADER_LEN, buf, len) != 0))
        fail("record encode/decode mismatch");
    /* One byte too little room must be refused, not overrun. */
    if (fcgi_record_encode(type, id, len ? buf : NULL, len, out, n - 1) != 0)
        fail("record encoded into too small a buffer");
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    check_header(buf, size);
    for (size_t start = 0; start < size && start < 8; start++)
        check_nv_walk(buf + start, size - start);
    check_fixed_bodies(buf, size);
    if (size >= 8)
        check_fixed_bodies(buf, 8);
    check_record_encode(buf, size, size ? buf[0] : 0, size >= 3 ? (uint16_t)(buf[1] << 8 | buf[2]) : 1);
    free(buf);
    return 0;
}
