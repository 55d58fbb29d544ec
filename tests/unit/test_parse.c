/* Unit tests for parse: strict integers, sizes, durations, booleans. */
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "parse.h"

struct u64_case {
	const char *in;
	int ret;
	uint64_t out;
};

typedef int (*parse_fn)(const char *, uint64_t *);

static void check_u64_cases(const char *what, parse_fn fn,
			    const struct u64_case *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t v = 0xdeadbeef;
		int r = fn(cases[i].in, &v);

		cr_expect_eq(r, cases[i].ret, "%s(\"%s\") returned %d, want %d",
			     what, cases[i].in, r, cases[i].ret);
		if (cases[i].ret == 0)
			cr_expect_eq(v, cases[i].out, "%s(\"%s\") gave %" PRIu64
				     ", want %" PRIu64, what, cases[i].in, v, cases[i].out);
		else
			cr_expect_eq(v, 0xdeadbeef, "%s(\"%s\") wrote its output on failure",
				     what, cases[i].in);
	}
}

#define CHECK(fn, cases) check_u64_cases(#fn, fn, cases, sizeof(cases) / sizeof(cases[0]))

Test(parse, u64)
{
	static const struct u64_case cases[] = {
		{ "0", 0, 0 },
		{ "1", 0, 1 },
		{ "007", 0, 7 },
		{ "4096", 0, 4096 },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "99999999999999999999", -ERANGE, 0 },
		{ "99999999999999999999x", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "+1", -EINVAL, 0 },
		{ " 1", -EINVAL, 0 },
		{ "1 ", -EINVAL, 0 },
		{ "1x", -EINVAL, 0 },
		{ "0x10", -EINVAL, 0 },
		{ "1.0", -EINVAL, 0 },
		{ "1e3", -EINVAL, 0 },
	};

	CHECK(parse_u64, cases);
}

Test(parse, u64_null)
{
	uint64_t v;

	cr_assert_eq(parse_u64(NULL, &v), -EINVAL);
	cr_assert_eq(parse_u64_n(NULL, 3, &v), -EINVAL);
}

Test(parse, u64_n_reads_only_len_bytes)
{
	const char buf[] = { '1', '2', '3', '4', 'x' };   /* not NUL-terminated */
	uint64_t v = 0;

	cr_assert_eq(parse_u64_n(buf, 4, &v), 0);
	cr_assert_eq(v, 1234);
	cr_assert_eq(parse_u64_n(buf, 2, &v), 0);
	cr_assert_eq(v, 12);
	cr_assert_eq(parse_u64_n(buf, 5, &v), -EINVAL);
	cr_assert_eq(parse_u64_n(buf, 0, &v), -EINVAL);
	cr_assert_eq(parse_u64_n("18446744073709551615", 20, &v), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(parse_u64_n("184467440737095516150", 21, &v), -ERANGE);
}

Test(parse, size)
{
	static const struct u64_case cases[] = {
		{ "0", 0, 0 },
		{ "1024", 0, 1024 },
		{ "1B", 0, 1 },
		{ "1b", 0, 1 },
		{ "64K", 0, 65536 },
		{ "64k", 0, 65536 },
		{ "64KB", 0, 65536 },
		{ "64KiB", 0, 65536 },
		{ "64kib", 0, 65536 },
		{ "10M", 0, 10485760 },
		{ "10MiB", 0, 10485760 },
		{ "2G", 0, 2147483648 },
		{ "2GB", 0, 2147483648 },
		{ "1T", 0, 1099511627776 },
		{ "1TiB", 0, 1099511627776 },
		{ "16777215T", 0, 18446742974197923840u },
		{ "18446744073709551615", 0, UINT64_MAX },
		{ "18446744073709551615B", 0, UINT64_MAX },
		{ "16777216T", -ERANGE, 0 },
		{ "18014398509481984K", -ERANGE, 0 },
		{ "18446744073709551616", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "K", -EINVAL, 0 },
		{ "10 M", -EINVAL, 0 },
		{ " 10M", -EINVAL, 0 },
		{ "10M ", -EINVAL, 0 },
		{ "-1K", -EINVAL, 0 },
		{ "1.5G", -EINVAL, 0 },
		{ "1iB", -EINVAL, 0 },
		{ "1Ki", -EINVAL, 0 },
		{ "1KK", -EINVAL, 0 },
		{ "1P", -EINVAL, 0 },
		{ "1bytes", -EINVAL, 0 },
	};

	CHECK(parse_size, cases);
}

Test(parse, duration)
{
	static const struct u64_case cases[] = {
		{ "0", 0, 0 },
		{ "0ms", 0, 0 },
		{ "30", 0, 30000 },
		{ "30s", 0, 30000 },
		{ "250ms", 0, 250 },
		{ "5m", 0, 300000 },
		{ "2h", 0, 7200000 },
		{ "1d", 0, 86400000 },
		{ "18446744073709551615ms", 0, UINT64_MAX },
		{ "18446744073709551", 0, 18446744073709551000u },
		{ "213503982334d", 0, 18446744073657600000u },
		{ "18446744073709552", -ERANGE, 0 },
		{ "213503982335d", -ERANGE, 0 },
		{ "99999999999999999999ms", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "5M", -EINVAL, 0 },
		{ "5S", -EINVAL, 0 },
		{ "5 s", -EINVAL, 0 },
		{ "5s ", -EINVAL, 0 },
		{ "-1s", -EINVAL, 0 },
		{ "1.5s", -EINVAL, 0 },
		{ "1h30m", -EINVAL, 0 },
		{ "5min", -EINVAL, 0 },
		{ "5sec", -EINVAL, 0 },
		{ "5us", -EINVAL, 0 },
	};

	CHECK(parse_duration_ms, cases);
}

Test(parse, bool_values)
{
	static const char *const yes[] = { "yes", "YES", "Yes", "true", "TRUE", "on", "On", "1" };
	static const char *const no[] = { "no", "NO", "false", "False", "off", "OFF", "0" };
	static const char *const bad[] = { "", "y", "n", "2", "01", "yes ", " no", "enable", "nope" };
	size_t i;
	bool b;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		b = false;
		cr_expect_eq(parse_bool(yes[i], &b), 0, "parse_bool(\"%s\")", yes[i]);
		cr_expect(b, "parse_bool(\"%s\") should be true", yes[i]);
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		b = true;
		cr_expect_eq(parse_bool(no[i], &b), 0, "parse_bool(\"%s\")", no[i]);
		cr_expect(!b, "parse_bool(\"%s\") should be false", no[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = true;
		cr_expect_eq(parse_bool(bad[i], &b), -EINVAL, "parse_bool(\"%s\")", bad[i]);
		cr_expect(b, "parse_bool(\"%s\") wrote its output on failure", bad[i]);
	}
	cr_expect_eq(parse_bool(NULL, &b), -EINVAL);
}

Test(parse, format_size)
{
	static const struct {
		uint64_t bytes;
		const char *want;
	} cases[] = {
		{ 0, "0 B" },
		{ 1, "1 B" },
		{ 1023, "1023 B" },
		{ 1024, "1.0 KiB" },
		{ 1536, "1.5 KiB" },
		{ 1048575, "1.0 MiB" },
		{ 1048576, "1.0 MiB" },
		{ 536870912, "512.0 MiB" },
		{ 3221225472, "3.0 GiB" },
		{ 1099511627776, "1.0 TiB" },
		{ 1125899906842624, "1.0 PiB" },
		{ UINT64_MAX, "16.0 EiB" },
	};
	char buf[32];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 'x', sizeof(buf));
		cr_expect_eq(format_size(cases[i].bytes, buf, sizeof(buf)), buf);
		cr_expect_str_eq(buf, cases[i].want, "format_size(%" PRIu64 ")",
				 cases[i].bytes);
	}
}

Test(parse, format_size_truncates)
{
	char buf[4];

	cr_assert_eq(format_size(536870912, buf, sizeof(buf)), buf);
	cr_assert_str_eq(buf, "512");
	buf[0] = 'z';
	cr_assert_eq(format_size(1, buf, 0), buf);
	cr_assert_eq(buf[0], 'z', "a zero-sized buffer must stay untouched");
}
