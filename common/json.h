/*
 * json.h - a minimal streaming JSON writer: objects, arrays, strings, numbers, booleans.
 *
 * Values are written in order to a FILE as they are added; commas and indentation are handled
 * here. Keys are given for members of objects and NULL for array elements. Non-finite doubles
 * are written as null (JSON has no NaN or infinity).
 */
#ifndef ECHOBENCH_JSON_H
#define ECHOBENCH_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
    FILE *out;
    int depth;
    bool need_comma[JSON_MAX_DEPTH];
};

/* Starts writing a document to out: the top-level value is added next. */
void json_start(struct json *j, FILE *out);

void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);

void json_string(struct json *j, const char *key, const char *value); /* NULL value: null */
void json_uint(struct json *j, const char *key, uint64_t value);
void json_int(struct json *j, const char *key, int64_t value);
void json_double(struct json *j, const char *key, double value);
void json_bool(struct json *j, const char *key, bool value);
void json_null(struct json *j, const char *key);

/* Ends the document (a final newline). Returns 0, or -EIO if any write failed. */
int json_finish(struct json *j);

#endif
