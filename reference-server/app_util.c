#include "app_util.h"
#include "hex.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool query_next(const uint8_t *query, size_t query_len, size_t *pos, struct query_pair *pair)
{
    if (*pos >= query_len)
        return false;
    size_t start = *pos, end = start;
    while (end < query_len && query[end] != '&')
        end++;
    const uint8_t *equals = memchr(query + start, '=', end - start);
    pair->key = query + start;
    pair->key_len = equals ? (size_t)(equals - pair->key) : end - start;
    pair->has_value = equals != NULL;
    pair->value = equals ? equals + 1 : query + end;
    pair->value_len = (size_t)(query + end - pair->value);
    *pos = end + 1;
    return true;
}

bool query_key_is(const struct query_pair *pair, const char *key)
{
    size_t len = strlen(key);
    return pair->has_value && pair->key_len == len && memcmp(pair->key, key, len) == 0;
}

void query_decode(const struct query_pair *pair, char *out, size_t out_cap)
{
    if (!out_cap)
        return;
    size_t o = 0;
    const uint8_t *v = pair->value;
    for (size_t i = 0; i < pair->value_len && o + 1 < out_cap; i++) {
        int hi, lo;
        if (v[i] == '%' && i + 2 < pair->value_len && (hi = hex_value(v[i + 1])) >= 0 &&
            (lo = hex_value(v[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = v[i] == '+' ? ' ' : (char)v[i];
        }
    }
    out[o] = '\0';
}

uint64_t query_decode_u64(const struct query_pair *pair, uint64_t fallback)
{
    char text[24];
    query_decode(pair, text, sizeof(text));
    if (text[0] < '0' || text[0] > '9')
        return fallback;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    return *end ? fallback : (uint64_t)v;
}

bool stream_digest_init(struct stream_digest *d)
{
    *d = (struct stream_digest){0};
    return true;
}

void stream_digest_update(struct stream_digest *d, const uint8_t *data, size_t len)
{
    d->length += len;
    if (!len || d->failed)
        return;
    if (!d->md_ctx) {
        d->md_ctx = EVP_MD_CTX_new();
        if (!d->md_ctx || EVP_DigestInit_ex(d->md_ctx, EVP_sha256(), NULL) != 1) {
            stream_digest_free(d);
            d->failed = true;
            return;
        }
    }
    if (EVP_DigestUpdate(d->md_ctx, data, len) != 1)
        d->failed = true;
}

void stream_digest_final_hex(struct stream_digest *d, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    hex[0] = '\0';
    if (d->failed)
        return;
    if (!d->md_ctx) {
        static const char empty_sha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        memcpy(hex, empty_sha256, sizeof(empty_sha256));
        return;
    }
    if (EVP_DigestFinal_ex(d->md_ctx, md, &md_len) != 1 || md_len != 32)
        return;
    hex_encode(md, md_len, hex);
}

void stream_digest_free(struct stream_digest *d)
{
    EVP_MD_CTX_free(d->md_ctx);
    d->md_ctx = NULL;
}

bool json_append_bytes(struct byte_queue *out, const uint8_t *data, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = data[i];
        if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\')
            continue;
        char escaped[8];
        snprintf(escaped, sizeof(escaped), "\\u%04x", b);
        if (!byte_queue_append(out, data + start, i - start) || !byte_queue_append(out, escaped, 6))
            return false;
        start = i + 1;
    }
    return byte_queue_append(out, data + start, len - start);
}

bool queue_printf(struct byte_queue *out, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(text))
        return false;
    return byte_queue_append(out, text, (size_t)n);
}
