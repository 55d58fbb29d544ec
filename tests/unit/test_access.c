/* Unit tests for access: CIDR rules, tcpd-style verdicts and the per-address table. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "access.h"

/* A peer address from text: IPv4 as AF_INET, anything else AF_INET6. */
static struct sockaddr_storage peer(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(40000);
		cr_assert_eq(inet_pton(AF_INET6, text, &in6->sin6_addr), 1, "%s", text);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(40000);
		cr_assert_eq(inet_pton(AF_INET, text, &in->sin_addr), 1, "%s", text);
	}
	return ss;
}

static bool matches(const char *rules, const char *addr)
{
	struct access_list l = { 0 };
	struct sockaddr_storage ss = peer(addr);
	const char *why = NULL;
	bool hit;

	cr_assert_eq(access_list_parse(&l, rules, &why, NULL, 0), 0, "%s: %s", rules,
		     why ? why : "");
	hit = access_list_match(&l, (struct sockaddr *)&ss);
	access_list_finish(&l);
	return hit;
}

Test(access, ipv4_prefixes)
{
	cr_expect(matches("127.0.0.0/8", "127.0.0.1"));
	cr_expect(matches("127.0.0.0/8", "127.255.255.255"));
	cr_expect(!matches("127.0.0.0/8", "128.0.0.1"));
	cr_expect(matches("192.168.1.7", "192.168.1.7"));
	cr_expect(!matches("192.168.1.7", "192.168.1.8"));
	cr_expect(matches("192.168.1.7/32", "192.168.1.7"));
	cr_expect(!matches("192.168.1.6/32", "192.168.1.7"));
	cr_expect(matches("10.0.0.0/9", "10.127.1.1"));
	cr_expect(!matches("10.0.0.0/9", "10.128.1.1"));
	cr_expect(matches("0.0.0.0/0", "8.8.8.8"));
	cr_expect(matches("0.0.0.0/0", "::ffff:8.8.8.8"));
	/* An IPv4 /0 is every IPv4 address, not every address. */
	cr_expect(!matches("0.0.0.0/0", "2001:db8::1"));
}

Test(access, ipv6_prefixes)
{
	cr_expect(matches("::1/128", "::1"));
	cr_expect(matches("::1", "::1"));
	cr_expect(!matches("::1/128", "::2"));
	cr_expect(matches("2001:db8::/32", "2001:db8:ffff::1"));
	cr_expect(!matches("2001:db8::/32", "2001:db9::1"));
	cr_expect(matches("2001:db8::/33", "2001:db8:7fff::1"));
	cr_expect(!matches("2001:db8::/33", "2001:db8:8000::1"));
	cr_expect(matches("::/0", "2001:db8::1"));
	cr_expect(matches("::/0", "10.1.2.3"));
	cr_expect(!matches("::1", "127.0.0.1"));
}

Test(access, mapped_peers_match_ipv4_rules)
{
	cr_expect(matches("127.0.0.0/8", "::ffff:127.0.0.1"));
	cr_expect(!matches("127.0.0.0/8", "::ffff:128.0.0.1"));
	cr_expect(matches("::ffff:10.0.0.0/104", "10.200.0.1"));
	cr_expect(matches("10.0.0.0/8 ::1", "::1"));
	cr_expect(matches("10.0.0.0/8,::1", "10.9.9.9"));
}

static void expect_bad(const char *text, const char *want_why, const char *want_bad)
{
	struct access_list l = { 0 };
	const char *why = NULL;
	char bad[32] = "";

	cr_expect_eq(access_list_parse(&l, text, &why, bad, sizeof(bad)), -EINVAL, "%s", text);
	cr_expect_str_eq(why ? why : "", want_why, "%s", text);
	cr_expect_str_eq(bad, want_bad, "%s", text);
	access_list_finish(&l);
	cr_expect_eq(l.n, 0);
	cr_expect_null(l.rules);
}

Test(access, bad_rules)
{
	expect_bad("10.0.0.0/33", "prefix length must be 0..32 for IPv4", "10.0.0.0/33");
	expect_bad("::/129", "prefix length must be 0..128 for IPv6", "::/129");
	expect_bad("10.0.0.0/", "prefix length must be 0..32 for IPv4", "10.0.0.0/");
	expect_bad("10.0.0.0/-1", "prefix length must be 0..32 for IPv4", "10.0.0.0/-1");
	expect_bad("10.0.0.0/8x", "prefix length must be 0..32 for IPv4", "10.0.0.0/8x");
	expect_bad("10.0.0.1/8", "address has bits set beyond the prefix length", "10.0.0.1/8");
	expect_bad("2001:db8::1/32", "address has bits set beyond the prefix length",
		   "2001:db8::1/32");
	expect_bad("::1 localhost", "expected an IPv4 or IPv6 address (numeric, no host names)",
		   "localhost");
	expect_bad("1.2.3", "expected an IPv4 or IPv6 address (numeric, no host names)", "1.2.3");
	expect_bad("/8", "expected an IPv4 or IPv6 address", "/8");
	expect_bad("[::1]", "expected an IPv4 or IPv6 address (numeric, no host names)", "[::1]");
	expect_bad("1111:2222:3333:4444:5555:6666:7777:8888:9999/64",
		   "expected an IPv4 or IPv6 address (numeric, no host names)",
		   "1111:2222:3333:4444:5555:6666:7");
	expect_bad("::1 1111:2222:3333:4444:5555:6666:7777:8888:1111:2222:3333/64",
		   "expected an IPv4 or IPv6 address", "1111:2222:3333:4444:5555:6666:7");
}

Test(access, empty_text_adds_nothing)
{
	struct access_list l = { 0 };

	cr_expect_eq(access_list_parse(&l, " , \t", NULL, NULL, 0), 0);
	cr_expect_eq(l.n, 0);
	access_list_finish(&l);
}

Test(access, tcpd_verdicts)
{
	struct access_list allow = { 0 }, deny = { 0 }, none = { 0 };
	struct sockaddr_storage lo = peer("127.0.0.1"), lan = peer("192.168.1.5"),
				bad = peer("192.168.1.66"), v6 = peer("2001:db8::5");
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	cr_assert_eq(access_list_parse(&allow, "127.0.0.0/8 192.168.0.0/16", NULL, NULL, 0), 0);
	cr_assert_eq(access_list_parse(&deny, "192.168.1.66", NULL, NULL, 0), 0);

	/* No rules: everybody. */
	cr_expect(access_allowed(&none, &none, (struct sockaddr *)&v6));
	cr_expect(access_allowed(NULL, NULL, (struct sockaddr *)&un));
	/* Deny only. */
	cr_expect(!access_allowed(&none, &deny, (struct sockaddr *)&bad));
	cr_expect(access_allowed(&none, &deny, (struct sockaddr *)&v6));
	/* Allow only. */
	cr_expect(access_allowed(&allow, &none, (struct sockaddr *)&lo));
	cr_expect(!access_allowed(&allow, &none, (struct sockaddr *)&v6));
	cr_expect(!access_allowed(&allow, &none, (struct sockaddr *)&un));
	/* Deny wins over allow. */
	cr_expect(access_allowed(&allow, &deny, (struct sockaddr *)&lan));
	cr_expect(!access_allowed(&allow, &deny, (struct sockaddr *)&bad));
	access_list_finish(&allow);
	access_list_finish(&deny);
}

Test(access, table_counts_per_address)
{
	struct access_table *t = access_table_new(8);
	struct sockaddr_storage a = peer("192.0.2.1"), a6 = peer("::ffff:192.0.2.1"),
				b = peer("2001:db8::1");
	struct sockaddr *sa = (struct sockaddr *)&a, *sb = (struct sockaddr *)&b;

	cr_assert_not_null(t);
	cr_expect_eq(access_enter(t, 0, sa, 2), 0);
	/* The mapped form is the same client. */
	cr_expect_eq(access_enter(t, 1, (struct sockaddr *)&a6, 2), 0);
	cr_expect_eq(access_count(t, sa), 2);
	cr_expect_eq(access_enter(t, 2, sa, 2), -EBUSY);
	cr_expect_eq(access_count(t, sa), 2, "a refused entry is not kept");
	/* Another address is counted on its own. */
	cr_expect_eq(access_enter(t, 2, sb, 2), 0);
	cr_expect_eq(access_count(t, sb), 1);
	access_leave(t, 0);
	cr_expect_eq(access_count(t, sa), 1);
	cr_expect_eq(access_enter(t, 3, sa, 2), 0);
	/* A dead worker's entry is cleared by the master. */
	access_release_slot(t, 1);
	cr_expect_eq(access_count(t, sa), 1);
	/* No cap: nothing recorded. */
	cr_expect_eq(access_enter(t, 4, sb, 0), 0);
	cr_expect_eq(access_count(t, sb), 1);
	cr_expect_eq(access_enter(t, 8, sa, 2), -EINVAL);
	cr_expect_eq(access_enter(NULL, 0, sa, 2), -EINVAL);
	access_table_free(t);
	access_table_free(NULL);
}

/* The table is one mapping shared with children forked after it. */
Test(access, table_is_shared_across_fork)
{
	struct access_table *t = access_table_new(4);
	struct sockaddr_storage a = peer("198.51.100.7");
	struct sockaddr *sa = (struct sockaddr *)&a;
	int status;
	pid_t pid;

	cr_assert_not_null(t);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0)
		_exit(access_enter(t, 2, sa, 1) == 0 ? 0 : 1);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_expect_eq(access_count(t, sa), 1);
	cr_expect_eq(access_enter(t, 0, sa, 1), -EBUSY);
	access_release_slot(t, 2);
	cr_expect_eq(access_enter(t, 0, sa, 1), 0);
	access_table_free(t);
}
