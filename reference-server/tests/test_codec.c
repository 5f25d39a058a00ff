/* Unit tests for the FastCGI record codec. Decoders are fed heap copies sized to
 * exactly the bytes under test, so an over-read shows up under AddressSanitizer. */
#include "fcgi_codec.h"
#include "test_main.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A heap buffer holding exactly len bytes (at least one byte is allocated so an
 * empty buffer is still a valid, non-NULL pointer). */
static uint8_t *exact_copy(const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    if (len > 0)
        memcpy(copy, bytes, len);
    return copy;
}

static uint8_t *filled(size_t len, uint8_t seed)
{
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7u);
    return buf;
}

static void test_header_truncated(struct test_counts *tc)
{
    const uint8_t full[FCGI_HEADER_LEN] = {1, 1, 0, 1, 0, 8, 0, 0};
    for (size_t len = 0; len < FCGI_HEADER_LEN; len++) {
        uint8_t *buf = exact_copy(full, len);
        struct fcgi_header h = {0};
        CHECK_EQ_U(fcgi_header_decode(buf, len, &h), FCGI_DECODE_NEED_MORE);
        free(buf);
    }
}

static void test_header_round_trip(struct test_counts *tc)
{
    const uint16_t ids[] = {0, 1, 256, 65535};
    const uint16_t lengths[] = {0, 65535};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        for (size_t j = 0; j < sizeof lengths / sizeof lengths[0]; j++) {
            struct fcgi_header in = {FCGI_VERSION_1, FCGI_STDOUT, ids[i], lengths[j], 255};
            uint8_t wire[FCGI_HEADER_LEN];
            fcgi_header_encode(&in, wire);
            uint8_t *buf = exact_copy(wire, sizeof wire);
            struct fcgi_header out = {0};
            CHECK_EQ_U(fcgi_header_decode(buf, sizeof wire, &out), FCGI_DECODE_OK);
            CHECK_EQ_U(out.version, FCGI_VERSION_1);
            CHECK_EQ_U(out.type, FCGI_STDOUT);
            CHECK_EQ_U(out.request_id, ids[i]);
            CHECK_EQ_U(out.content_length, lengths[j]);
            CHECK_EQ_U(out.padding_length, 255);
            CHECK_EQ_U(wire[7], 0);
            CHECK_EQ_U(fcgi_record_size(&out), 8u + lengths[j] + 255u);
            free(buf);
        }
    }
}

static void test_header_bytes(struct test_counts *tc)
{
    struct fcgi_header in = {FCGI_VERSION_1, FCGI_PARAMS, 0x0102, 0x0304, 5};
    const uint8_t expected[FCGI_HEADER_LEN] = {1, 4, 0x01, 0x02, 0x03, 0x04, 5, 0};
    uint8_t wire[FCGI_HEADER_LEN];
    fcgi_header_encode(&in, wire);
    CHECK_MEM(wire, expected, sizeof expected);
}

static void test_header_keeps_other_versions(struct test_counts *tc)
{
    /* Version 2 with a non-zero reserved byte: reported as-is, judged by the caller. */
    const uint8_t wire[FCGI_HEADER_LEN] = {2, 99, 0, 7, 0, 0, 0, 0xff};
    uint8_t *buf = exact_copy(wire, sizeof wire);
    struct fcgi_header h = {0};
    CHECK_EQ_U(fcgi_header_decode(buf, sizeof wire, &h), FCGI_DECODE_OK);
    CHECK_EQ_U(h.version, 2);
    CHECK_EQ_U(h.type, 99);
    CHECK_EQ_U(h.request_id, 7);
    free(buf);
}

static void test_padding(struct test_counts *tc)
{
    CHECK_EQ_U(fcgi_padding_for(0), 0);
    CHECK_EQ_U(fcgi_padding_for(1), 7);
    CHECK_EQ_U(fcgi_padding_for(7), 1);
    CHECK_EQ_U(fcgi_padding_for(8), 0);
    CHECK_EQ_U(fcgi_padding_for(9), 7);
    CHECK_EQ_U(fcgi_padding_for(65535), 1);
    struct fcgi_header h = {FCGI_VERSION_1, FCGI_STDIN, 1, 0, 0};
    CHECK_EQ_U(fcgi_record_size(&h), 8);
}

static void test_record_encode_small(struct test_counts *tc)
{
    const uint8_t content[] = {'h', 'e', 'l', 'l', 'o'};
    const uint8_t expected[16] = {1, 6, 0, 3, 0, 5, 3, 0, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
    uint8_t out[16];
    memset(out, 0xaa, sizeof out);
    CHECK_EQ_U(fcgi_record_encode(FCGI_STDOUT, 3, content, sizeof content, out, sizeof out), 16);
    CHECK_MEM(out, expected, sizeof expected);
    CHECK_EQ_U(fcgi_record_encode(FCGI_STDOUT, 3, content, sizeof content, out, 15), 0);

    /* An empty record (end of stream) with no content pointer at all. */
    const uint8_t empty_expected[8] = {1, 5, 0, 1, 0, 0, 0, 0};
    CHECK_EQ_U(fcgi_record_encode(FCGI_STDIN, 1, NULL, 0, out, 8), 8);
    CHECK_MEM(out, empty_expected, sizeof empty_expected);
    CHECK_EQ_U(fcgi_record_encode(FCGI_STDIN, 1, NULL, 0, out, 7), 0);
}

static void test_record_encode_max(struct test_counts *tc)
{
    size_t content_len = FCGI_MAX_CONTENT;
    size_t total = 8 + content_len + 1;
    uint8_t *content = filled(content_len, 3);
    uint8_t *out = malloc(total);
    if (out == NULL)
        exit(2);
    memset(out, 0xaa, total);
    CHECK_EQ_U(fcgi_record_encode(FCGI_STDERR, 65535, content, content_len, out, total), total);
    struct fcgi_header h = {0};
    CHECK_EQ_U(fcgi_header_decode(out, total, &h), FCGI_DECODE_OK);
    CHECK_EQ_U(h.content_length, 65535);
    CHECK_EQ_U(h.padding_length, 1);
    CHECK_EQ_U(h.request_id, 65535);
    CHECK_EQ_U(fcgi_record_size(&h), total);
    CHECK_MEM(out + 8, content, content_len);
    CHECK_EQ_U(out[total - 1], 0);

    CHECK_EQ_U(fcgi_record_encode(FCGI_STDERR, 1, content, content_len, out, total - 1), 0);
    free(content);
    free(out);

    /* Content over the 16-bit limit is refused whatever the room. */
    size_t too_long = FCGI_MAX_CONTENT + 1;
    uint8_t *big = filled(too_long, 1);
    uint8_t *big_out = malloc(too_long + 16);
    if (big_out == NULL)
        exit(2);
    CHECK_EQ_U(fcgi_record_encode(FCGI_STDOUT, 1, big, too_long, big_out, too_long + 16), 0);
    free(big);
    free(big_out);
}

static void test_begin_request(struct test_counts *tc)
{
    struct fcgi_begin_request in = {FCGI_RESPONDER, FCGI_KEEP_CONN};
    const uint8_t expected[8] = {0, 1, 1, 0, 0, 0, 0, 0};
    uint8_t body[8];
    memset(body, 0xaa, sizeof body);
    fcgi_begin_request_encode(&in, body);
    CHECK_MEM(body, expected, sizeof expected);

    uint8_t *buf = exact_copy(body, 8);
    struct fcgi_begin_request out = {0};
    CHECK_EQ_U(fcgi_begin_request_decode(buf, 8, &out), FCGI_DECODE_OK);
    CHECK_EQ_U(out.role, FCGI_RESPONDER);
    CHECK_EQ_U(out.flags, FCGI_KEEP_CONN);
    free(buf);

    const uint8_t role_high[8] = {0x12, 0x34, 0, 0, 0, 0, 0, 0};
    buf = exact_copy(role_high, 8);
    CHECK_EQ_U(fcgi_begin_request_decode(buf, 8, &out), FCGI_DECODE_OK);
    CHECK_EQ_U(out.role, 0x1234);
    CHECK_EQ_U(out.flags, 0);
    free(buf);

    const uint8_t nine[9] = {0, 1, 0, 0, 0, 0, 0, 0, 0};
    const size_t wrong_sizes[] = {0, 7, 9};
    for (size_t i = 0; i < sizeof wrong_sizes / sizeof wrong_sizes[0]; i++) {
        buf = exact_copy(nine, wrong_sizes[i]);
        CHECK_EQ_U(fcgi_begin_request_decode(buf, wrong_sizes[i], &out), FCGI_DECODE_BAD_SIZE);
        free(buf);
    }
}

static void test_end_request(struct test_counts *tc)
{
    struct fcgi_end_request in = {0x01020304u, FCGI_OVERLOADED};
    const uint8_t expected[8] = {1, 2, 3, 4, 2, 0, 0, 0};
    uint8_t body[8];
    memset(body, 0xaa, sizeof body);
    fcgi_end_request_encode(&in, body);
    CHECK_MEM(body, expected, sizeof expected);

    uint8_t *buf = exact_copy(body, 8);
    struct fcgi_end_request out = {0};
    CHECK_EQ_U(fcgi_end_request_decode(buf, 8, &out), FCGI_DECODE_OK);
    CHECK_EQ_U(out.app_status, 0x01020304u);
    CHECK_EQ_U(out.protocol_status, FCGI_OVERLOADED);
    free(buf);

    struct fcgi_end_request max = {0xffffffffu, FCGI_UNKNOWN_ROLE};
    fcgi_end_request_encode(&max, body);
    buf = exact_copy(body, 8);
    CHECK_EQ_U(fcgi_end_request_decode(buf, 8, &out), FCGI_DECODE_OK);
    CHECK_EQ_U(out.app_status, 0xffffffffu);
    CHECK_EQ_U(out.protocol_status, FCGI_UNKNOWN_ROLE);
    free(buf);

    const uint8_t nine[9] = {0};
    const size_t wrong_sizes[] = {0, 7, 9};
    for (size_t i = 0; i < sizeof wrong_sizes / sizeof wrong_sizes[0]; i++) {
        buf = exact_copy(nine, wrong_sizes[i]);
        CHECK_EQ_U(fcgi_end_request_decode(buf, wrong_sizes[i], &out), FCGI_DECODE_BAD_SIZE);
        free(buf);
    }
}

static void test_unknown_type(struct test_counts *tc)
{
    const uint8_t expected[8] = {200, 0, 0, 0, 0, 0, 0, 0};
    uint8_t body[8];
    memset(body, 0xaa, sizeof body);
    fcgi_unknown_type_encode(200, body);
    CHECK_MEM(body, expected, sizeof expected);
}

static void test_nv_prefix_bytes(struct test_counts *tc)
{
    struct {
        size_t length;
        uint8_t prefix[4];
        size_t prefix_len;
    } const cases[] = {
        {0, {0x00}, 1},
        {127, {0x7f}, 1},
        {128, {0x80, 0x00, 0x00, 0x80}, 4},
        {1000, {0x80, 0x00, 0x03, 0xe8}, 4},
        {65536, {0x80, 0x01, 0x00, 0x00}, 4},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].length;
        uint8_t *name = filled(len, 1);
        size_t size = fcgi_nv_encoded_size(len, 0);
        CHECK_EQ_U(size, cases[i].prefix_len + 1 + len);
        uint8_t *out = malloc(size);
        if (out == NULL)
            exit(2);
        CHECK_EQ_U(fcgi_nv_encode(name, len, NULL, 0, out, size), size);
        CHECK_MEM(out, cases[i].prefix, cases[i].prefix_len);
        CHECK_EQ_U(out[cases[i].prefix_len], 0); /* the empty value's length */
        /* The same length as the value: its prefix follows the name's 1-byte one. */
        CHECK_EQ_U(fcgi_nv_encode(NULL, 0, name, len, out, size), size);
        CHECK_EQ_U(out[0], 0);
        CHECK_MEM(out + 1, cases[i].prefix, cases[i].prefix_len);
        free(name);
        free(out);
    }
}

static void test_nv_round_trip(struct test_counts *tc)
{
    const size_t lengths[] = {0, 127, 128, 255, 65535, 65536};
    const size_t count = sizeof lengths / sizeof lengths[0];
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < count; j++) {
            size_t name_len = lengths[i];
            size_t value_len = lengths[j];
            uint8_t *name = filled(name_len, 11);
            uint8_t *value = filled(value_len, 97);
            size_t size = fcgi_nv_encoded_size(name_len, value_len);
            size_t expected_size = (name_len < 128 ? 1 : 4) + (value_len < 128 ? 1 : 4) +
                                   name_len + value_len;
            CHECK_EQ_U(size, expected_size);
            uint8_t *wire = malloc(size);
            if (wire == NULL)
                exit(2);
            CHECK_EQ_U(fcgi_nv_encode(name, name_len, value, value_len, wire, size), size);
            CHECK_EQ_U(fcgi_nv_encode(name, name_len, value, value_len, wire, size - 1), 0);

            struct fcgi_nv nv = {0};
            size_t consumed = 0;
            CHECK_EQ_U(fcgi_nv_decode(wire, size, &nv, &consumed), FCGI_DECODE_OK);
            CHECK_EQ_U(consumed, size);
            CHECK_EQ_U(nv.name_len, name_len);
            CHECK_EQ_U(nv.value_len, value_len);
            CHECK(nv.name >= wire && nv.name + name_len <= wire + size);
            CHECK(nv.value >= wire && nv.value + value_len <= wire + size);
            if (nv.name_len == name_len && nv.value_len == value_len) {
                CHECK_MEM(nv.name, name, name_len);
                CHECK_MEM(nv.value, value, value_len);
            }
            /* One byte short: the prefix is whole, so the missing byte is an error. */
            if (size > 2)
                CHECK_EQ_U(fcgi_nv_decode(wire, size - 1, &nv, &consumed), FCGI_DECODE_BAD_LENGTH);
            free(name);
            free(value);
            free(wire);
        }
    }
}

static void test_nv_short_length_in_long_form(struct test_counts *tc)
{
    const uint8_t wire[] = {0x80, 0x00, 0x00, 0x05, 0x01, 'h', 'e', 'l', 'l', 'o', 'x'};
    uint8_t *buf = exact_copy(wire, sizeof wire);
    struct fcgi_nv nv = {0};
    size_t consumed = 0;
    CHECK_EQ_U(fcgi_nv_decode(buf, sizeof wire, &nv, &consumed), FCGI_DECODE_OK);
    CHECK_EQ_U(consumed, sizeof wire);
    CHECK_EQ_U(nv.name_len, 5);
    CHECK_EQ_U(nv.value_len, 1);
    CHECK_MEM(nv.name, "hello", 5);
    CHECK_MEM(nv.value, "x", 1);
    free(buf);

    /* The top bit is a marker, not part of the length: 0xff... is 0x7fffffff. */
    const uint8_t all_ones[] = {0xff, 0xff, 0xff, 0xff, 0x00};
    buf = exact_copy(all_ones, sizeof all_ones);
    CHECK_EQ_U(fcgi_nv_decode(buf, sizeof all_ones, &nv, &consumed), FCGI_DECODE_BAD_LENGTH);
    free(buf);
}

static void test_nv_lengths_past_buffer(struct test_counts *tc)
{
    struct {
        uint8_t bytes[16];
        size_t len;
    } const cases[] = {
        /* name 0x7fffffff, value 0: the name alone runs past. */
        {{0xff, 0xff, 0xff, 0xff, 0x00, 'a', 'b'}, 7},
        /* name 1, value 0x7fffffff. */
        {{0x01, 0xff, 0xff, 0xff, 0xff, 'a', 'b'}, 7},
        /* both 0x7fffffff: a wrapping sum would be the bug here. */
        {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a'}, 9},
        /* 50 + 50 declared in a 10-byte buffer. */
        {{50, 50, 1, 2, 3, 4, 5, 6, 7, 8}, 10},
        /* name fits exactly, value does not. */
        {{2, 1, 'a', 'b'}, 4},
        /* lengths present, nothing after them. */
        {{1, 0}, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *buf = exact_copy(cases[i].bytes, cases[i].len);
        struct fcgi_nv nv = {0};
        size_t consumed = 0;
        CHECK_EQ_U(fcgi_nv_decode(buf, cases[i].len, &nv, &consumed), FCGI_DECODE_BAD_LENGTH);
        free(buf);
    }
}

static void test_nv_truncated_prefix(struct test_counts *tc)
{
    struct {
        uint8_t bytes[8];
        size_t len;
    } const cases[] = {
        {{0}, 0},                      /* empty buffer */
        {{0x80}, 1},                   /* 4-byte name length cut after 1 byte */
        {{0x80, 0x00}, 2},
        {{0x80, 0x00, 0x00}, 3},
        {{0x05}, 1},                   /* value length missing */
        {{0x05, 0x80, 0x00, 0x00}, 4}, /* 4-byte value length cut short */
        {{0x80, 0x00, 0x00, 0x01}, 4}, /* long name length whole, value length missing */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *buf = exact_copy(cases[i].bytes, cases[i].len);
        struct fcgi_nv nv = {0};
        size_t consumed = 0;
        CHECK_EQ_U(fcgi_nv_decode(buf, cases[i].len, &nv, &consumed), FCGI_DECODE_NEED_MORE);
        free(buf);
    }
    struct fcgi_nv nv = {0};
    size_t consumed = 0;
    CHECK_EQ_U(fcgi_nv_decode(NULL, 0, &nv, &consumed), FCGI_DECODE_NEED_MORE);
}

static void test_nv_stream(struct test_counts *tc)
{
    /* Two pairs back to back, as in a PARAMS stream; the second is empty-valued. */
    const uint8_t wire[] = {4, 3, 'P', 'A', 'T', 'H', '/', 'a', 'b', 1, 0, 'X'};
    uint8_t *buf = exact_copy(wire, sizeof wire);
    struct fcgi_nv nv = {0};
    size_t consumed = 0;
    CHECK_EQ_U(fcgi_nv_decode(buf, sizeof wire, &nv, &consumed), FCGI_DECODE_OK);
    CHECK_EQ_U(consumed, 9);
    CHECK_MEM(nv.name, "PATH", 4);
    CHECK_MEM(nv.value, "/ab", 3);
    size_t rest = sizeof wire - consumed;
    CHECK_EQ_U(fcgi_nv_decode(buf + consumed, rest, &nv, &consumed), FCGI_DECODE_OK);
    CHECK_EQ_U(consumed, 3);
    CHECK_EQ_U(nv.name_len, 1);
    CHECK_EQ_U(nv.value_len, 0);
    CHECK_MEM(nv.name, "X", 1);
    free(buf);
}

static void test_nv_encode_limits(struct test_counts *tc)
{
    uint8_t out[16];
    const uint8_t byte = 'a';
    /* Rejected on length alone: the pointers are never read. */
    CHECK_EQ_U(fcgi_nv_encode(&byte, (size_t)FCGI_MAX_NV_LENGTH + 1, &byte, 0, out, sizeof out), 0);
    CHECK_EQ_U(fcgi_nv_encode(&byte, 0, &byte, (size_t)FCGI_MAX_NV_LENGTH + 1, out, sizeof out), 0);
    CHECK_EQ_U(fcgi_nv_encoded_size(FCGI_MAX_NV_LENGTH, 0), 5u + (size_t)FCGI_MAX_NV_LENGTH);
    CHECK_EQ_U(fcgi_nv_encode(&byte, 1, &byte, 1, out, 3), 0);
    CHECK_EQ_U(fcgi_nv_encode(&byte, 1, &byte, 1, out, 4), 4);
    const uint8_t expected[4] = {1, 1, 'a', 'a'};
    CHECK_MEM(out, expected, sizeof expected);
    CHECK_EQ_U(fcgi_nv_encode(NULL, 0, NULL, 0, out, 2), 2);
    CHECK_EQ_U(out[0], 0);
    CHECK_EQ_U(out[1], 0);
    CHECK_EQ_U(fcgi_nv_encode(NULL, 0, NULL, 0, out, 1), 0);
}

static void test_type_names(struct test_counts *tc)
{
    static const char *const expected[] = {
        "BEGIN_REQUEST", "ABORT_REQUEST", "END_REQUEST", "PARAMS",
        "STDIN", "STDOUT", "STDERR", "DATA",
        "GET_VALUES", "GET_VALUES_RESULT", "UNKNOWN_TYPE",
    };
    char buf[32];
    for (unsigned type = 1; type <= FCGI_MAXTYPE; type++)
        CHECK(strcmp(fcgi_type_name((uint8_t)type, buf, sizeof buf), expected[type - 1]) == 0);

    const char *name = fcgi_type_name(0, buf, sizeof buf);
    CHECK(name == buf);
    CHECK(strcmp(name, "UNKNOWN(0)") == 0);
    CHECK(strcmp(fcgi_type_name(12, buf, sizeof buf), "UNKNOWN(12)") == 0);
    CHECK(strcmp(fcgi_type_name(200, buf, sizeof buf), "UNKNOWN(200)") == 0);
    CHECK(strcmp(fcgi_type_name(255, buf, sizeof buf), "UNKNOWN(255)") == 0);

    /* A short buffer is truncated and still terminated. */
    char small[5];
    CHECK(strcmp(fcgi_type_name(200, small, sizeof small), "UNKN") == 0);
    CHECK(fcgi_type_name(200, NULL, 0) != NULL);
}

int main(void)
{
    struct test_counts counts = {0, 0};
    struct test_counts *tc = &counts;

    test_header_truncated(tc);
    test_header_round_trip(tc);
    test_header_bytes(tc);
    test_header_keeps_other_versions(tc);
    test_padding(tc);
    test_record_encode_small(tc);
    test_record_encode_max(tc);
    test_begin_request(tc);
    test_end_request(tc);
    test_unknown_type(tc);
    test_nv_prefix_bytes(tc);
    test_nv_round_trip(tc);
    test_nv_short_length_in_long_form(tc);
    test_nv_lengths_past_buffer(tc);
    test_nv_truncated_prefix(tc);
    test_nv_stream(tc);
    test_nv_encode_limits(tc);
    test_type_names(tc);

    return test_finish(tc);
}
