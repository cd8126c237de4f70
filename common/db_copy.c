/*  db_copy.c: binary COPY payloads (PostgreSQL's COPY BINARY format), built in memory and sent
    through db.c's COPY commands (see db.h).  */
#include "db_private.h"

#include "codec.h"

#include <stdlib.h>
#include <string.h>

/* Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01. */
#define S_PG_EPOCH_US INT64_C(946684800000000)

struct asy_db_copy {
    uint8_t *data;
    size_t size;
    size_t capacity;
    size_t rows;
    int error;
};

static void s_append(asy_db_copy_t *self, const void *bytes, size_t size)
{
    if (self->error)
        return;
    if (self->size + size > self->capacity) {
        size_t capacity = self->capacity ? self->capacity : 4096;
        while (capacity < self->size + size)
            capacity *= 2;
        uint8_t *grown = realloc(self->data, capacity);
        if (!grown) {
            self->error = ASY_ENOMEM;
            return;
        }
        self->data = grown;
        self->capacity = capacity;
    }
    memcpy(self->data + self->size, bytes, size);
    self->size += size;
}

static void s_be16(asy_db_copy_t *self, uint16_t value)
{
    uint8_t b[2] = {(uint8_t)(value >> 8), (uint8_t)value};
    s_append(self, b, sizeof b);
}

static void s_be32(asy_db_copy_t *self, uint32_t value)
{
    uint8_t b[4] = {(uint8_t)(value >> 24), (uint8_t)(value >> 16), (uint8_t)(value >> 8),
                    (uint8_t)value};
    s_append(self, b, sizeof b);
}

static void s_be64(asy_db_copy_t *self, uint64_t value)
{
    s_be32(self, (uint32_t)(value >> 32));
    s_be32(self, (uint32_t)value);
}

asy_db_copy_t *asy_db_copy_new(void)
{
    asy_db_copy_t *self = calloc(1, sizeof *self);
    if (self)
        asy_db_copy_clear(self);
    return self;
}

void asy_db_copy_destroy(asy_db_copy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->data);
    free(*self_p);
    *self_p = NULL;
}

void asy_db_copy_clear(asy_db_copy_t *self)
{
    static const uint8_t signature[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    self->size = 0;
    self->rows = 0;
    self->error = 0;
    s_append(self, signature, sizeof signature);
    s_be32(self, 0); /* flags */
    s_be32(self, 0); /* header extension length */
}

void asy_db_copy_row(asy_db_copy_t *self, int fields)
{
    s_be16(self, (uint16_t)fields);
    self->rows++;
}

void asy_db_copy_null(asy_db_copy_t *self)
{
    s_be32(self, UINT32_MAX); /* length -1 */
}

void asy_db_copy_bool(asy_db_copy_t *self, bool value)
{
    uint8_t b = value ? 1 : 0;
    s_be32(self, 1);
    s_append(self, &b, 1);
}

void asy_db_copy_int2(asy_db_copy_t *self, int16_t value)
{
    s_be32(self, 2);
    s_be16(self, (uint16_t)value);
}

void asy_db_copy_int4(asy_db_copy_t *self, int32_t value)
{
    s_be32(self, 4);
    s_be32(self, (uint32_t)value);
}

void asy_db_copy_int8(asy_db_copy_t *self, int64_t value)
{
    s_be32(self, 8);
    s_be64(self, (uint64_t)value);
}

void asy_db_copy_text(asy_db_copy_t *self, const char *text)
{
    if (!text) {
        asy_db_copy_null(self);
        return;
    }
    asy_db_copy_bytea(self, (const uint8_t *)text, strlen(text));
}

void asy_db_copy_bytea(asy_db_copy_t *self, const uint8_t *data, size_t size)
{
    if (size > INT32_MAX) {
        self->error = self->error ? self->error : ASY_EINVAL;
        return;
    }
    s_be32(self, (uint32_t)size);
    if (size)
        s_append(self, data, size);
}

void asy_db_copy_uuid(asy_db_copy_t *self, const char *text)
{
    uint8_t bytes[16];
    if (!asy_uuid_parse(text, bytes)) {
        self->error = self->error ? self->error : ASY_EINVAL;
        return;
    }
    asy_db_copy_uuid_bytes(self, bytes);
}

void asy_db_copy_uuid_bytes(asy_db_copy_t *self, const uint8_t bytes[16])
{
    s_be32(self, 16);
    s_append(self, bytes, 16);
}

void asy_db_copy_timestamptz(asy_db_copy_t *self, int64_t unix_us)
{
    asy_db_copy_int8(self, unix_us - S_PG_EPOCH_US);
}

size_t asy_db_copy_rows(const asy_db_copy_t *self)
{
    return self->rows;
}

int asy_db_copy_error(const asy_db_copy_t *self)
{
    return self->error;
}

int asy_db_copy_send(asy_db_t *self, const char *copy_sql, asy_db_copy_t *payload, uint64_t *rows)
{
    if (payload->error) {
        asy_db_set_error(self, NULL,
                         payload->error == ASY_ENOMEM ? "out of memory building COPY data"
                                                      : "malformed value in COPY data");
        return payload->error;
    }
    static const uint8_t trailer[2] = {0xff, 0xff};
    int rc = asy_db_copy_start(self, copy_sql);
    if (rc == 0)
        rc = asy_db_copy_put(self, payload->data, payload->size);
    if (rc == 0)
        rc = asy_db_copy_put(self, trailer, sizeof trailer);
    if (rc == 0)
        rc = asy_db_copy_end(self, rows);
    return rc;
}
