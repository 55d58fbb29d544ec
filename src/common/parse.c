/* parse: strict number, size, duration and boolean parsing (no atoi). */
#include "parse.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct parse_unit {
	const char *suffix;
	uint64_t factor;
};

/* Binary multiples only: a config saying "10M" means what `ls -h` shows.
 * "KB" is accepted as a synonym because people write it. */
static const struct parse_unit parse_size_units[] = {
	{ "",    1 },
	{ "B",   1 },
	{ "K",   UINT64_C(1) << 10 }, { "KB", UINT64_C(1) << 10 }, { "KiB", UINT64_C(1) << 10 },
	{ "M",   UINT64_C(1) << 20 }, { "MB", UINT64_C(1) << 20 }, { "MiB", UINT64_C(1) << 20 },
	{ "G",   UINT64_C(1) << 30 }, { "GB", UINT64_C(1) << 30 }, { "GiB", UINT64_C(1) << 30 },
	{ "T",   UINT64_C(1) << 40 }, { "TB", UINT64_C(1) << 40 }, { "TiB", UINT64_C(1) << 40 },
};

/* Case-sensitive on purpose: "5M" as a duration is too easily meant as
 * months or megabytes. */
static const struct parse_unit parse_duration_units[] = {
	{ "",   1000 },
	{ "ms", 1 },
	{ "s",  1000 },
	{ "m",  60 * 1000 },
	{ "h",  60 * 60 * 1000 },
	{ "d",  24 * 60 * 60 * 1000 },
};

int parse_u64_n(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!s || len == 0)
		return -EINVAL;
	/* Reject junk before overflow so "99999999999999999999x" is -EINVAL. */
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
	for (i = 0; i < len; i++) {
		unsigned digit = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - digit) / 10)
			return -ERANGE;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}

int parse_u64(const char *s, uint64_t *out)
{
	if (!s)
		return -EINVAL;
	return parse_u64_n(s, strlen(s), out);
}

/* Parses DIGITS followed by one of units' suffixes and scales by it. */
static int parse_scaled(const char *s, const struct parse_unit *units,
			size_t n_units, bool nocase, uint64_t *out)
{
	size_t ndigits;
	uint64_t v;
	size_t i;
	int r;

	if (!s)
		return -EINVAL;
	ndigits = strspn(s, "0123456789");
	if (ndigits == 0)
		return -EINVAL;
	for (i = 0; i < n_units; i++) {
		const char *suffix = s + ndigits;

		if (nocase ? strcasecmp(suffix, units[i].suffix)
			   : strcmp(suffix, units[i].suffix))
			continue;
		r = parse_u64_n(s, ndigits, &v);
		if (r < 0)
			return r;
		if (v > UINT64_MAX / units[i].factor)
			return -ERANGE;
		*out = v * units[i].factor;
		return 0;
	}
	return -EINVAL;
}

int parse_size(const char *s, uint64_t *out)
{
	return parse_scaled(s, parse_size_units,
			    sizeof(parse_size_units) / sizeof(parse_size_units[0]),
			    true, out);
}

int parse_duration_ms(const char *s, uint64_t *out)
{
	return parse_scaled(s, parse_duration_units,
			    sizeof(parse_duration_units) / sizeof(parse_duration_units[0]),
			    false, out);
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

const char *format_size(uint64_t bytes, char *buf, size_t cap)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	size_t i = 0;

	if (!buf || cap == 0)
		return buf;
	if (bytes < 1024) {
		snprintf(buf, cap, "%u B", (unsigned)bytes);
		return buf;
	}
	v /= 1024.0;
	/* Move up while the rounded figure would print as 1024.0 or more, so
	 * 1048575 bytes reads "1.0 MiB", never "1024.0 KiB". */
	while (v >= 1023.95 && i + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		i++;
	}
	snprintf(buf, cap, "%.1f %s", v, units[i]);
	return buf;
}

int parse_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
