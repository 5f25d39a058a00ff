#include "app_util.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool query_get(const uint8_t *query, size_t query_len, const char *key, char *out, size_t out_cap)
{
    size_t key_len = strlen(key);
    size_t pos = 0;
    while (pos < query_len) {
        size_t end = pos;
        while (end < query_len && query[end] != '&')
            end++;
        if (end - pos > key_len && memcmp(query + pos, key, key_len) == 0 && query[pos + key_len] == '=') {
            size_t o = 0;
            for (size_t i = pos + key_len + 1; i < end && o + 1 < out_cap; i++) {
                int hi, lo;
                if (query[i] == '%' && i + 2 < end && (hi = hex_value(query[i + 1])) >= 0 &&
                    (lo = hex_value(query[i + 2])) >= 0) {
                    out[o++] = (char)(hi * 16 + lo);
                    i += 2;
                } else {
                    out[o++] = query[i] == '+' ? ' ' : (char)query[i];
                }
            }
            if (out_cap)
                out[o] = '\0';
            return true;
        }
        pos = end + 1;
    }
    return false;
}

uint64_t query_get_u64(const uint8_t *query, size_t query_len, const char *key, uint64_t fallback)
{
    char text[24];
    if (!query_get(query, query_len, key, text, sizeof(text)) || text[0] < '0' || text[0] > '9')
        return fallback;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    return *end ? fallback : (uint64_t)v;
}

bool stream_digest_init(struct stream_digest *d)
{
    d->length = 0;
    d->md_ctx = EVP_MD_CTX_new();
    if (!d->md_ctx)
        return false;
    if (EVP_DigestInit_ex(d->md_ctx, EVP_sha256(), NULL) != 1) {
        stream_digest_free(d);
        return false;
    }
    return true;
}

void stream_digest_update(struct stream_digest *d, const uint8_t *data, size_t len)
{
    d->length += len;
    if (d->md_ctx && len)
        EVP_DigestUpdate(d->md_ctx, data, len);
}

void stream_digest_final_hex(struct stream_digest *d, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    hex[0] = '\0';
    if (!d->md_ctx || EVP_DigestFinal_ex(d->md_ctx, md, &md_len) != 1 || md_len != 32)
        return;
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < md_len; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0x0f];
    }
    hex[2 * md_len] = '\0';
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
