/* parse: strict number, size, duration and boolean parsing (no atoi). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whole-string decimal unsigned integer; no sign, no spaces, no empty
 * string.  Returns 0, -EINVAL or -ERANGE (overflow). */
int parse_u64(const char *s, uint64_t *out);
/* Same over a length-delimited token (need not be NUL-terminated). */
int parse_u64_n(const char *s, size_t len, uint64_t *out);

/* "1024", "64K", "10M", "2G", "1T" (binary multiples, case-insensitive,
 * optional trailing "B" or "iB").  Returns 0, -EINVAL, -ERANGE. */
int parse_size(const char *s, uint64_t *out);

/* "250ms", "30", "30s", "5m", "2h", "1d" → milliseconds; a bare number is
 * seconds.  Returns 0, -EINVAL, -ERANGE. */
int parse_duration_ms(const char *s, uint64_t *out);

/* yes/no, true/false, on/off, 1/0 (case-insensitive).  0 or -EINVAL. */
int parse_bool(const char *s, bool *out);

/* Value of one hexadecimal digit (either case), or -1. */
int parse_hex_digit(char c);

/* Formats a byte count as "512.0 MiB" into buf.  Returns buf. */
const char *format_size(uint64_t bytes, char *buf, size_t cap);
