/* test_policy: share access by anonymous=, read_users=, write_users= and read_only. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "policy.h"
#include "protocol.h"

static char *alice_bob[] = { "alice", "bob" };
static char *carol[] = { "carol" };

static struct share_conf share(int anonymous, bool read_only)
{
	return (struct share_conf){
		.name = "s",
		.anonymous = anonymous,
		.read_only = read_only,
		.read_users = { .names = alice_bob, .n = 2 },
		.write_users = { .names = carol, .n = 1 },
	};
}

Test(policy, rights)
{
	struct share_conf s = share(CONFIG_ANON_NO, false);

	cr_expect_eq(policy_share_right(&s, NULL, true), POLICY_NONE);
	cr_expect_eq(policy_share_right(&s, "alice", false), POLICY_READ);
	cr_expect_eq(policy_share_right(&s, "carol", false), POLICY_WRITE);
	cr_expect_eq(policy_share_right(&s, "dave", true), POLICY_NONE);
	/* Names are exact. */
	cr_expect_eq(policy_share_right(&s, "Alice", false), POLICY_NONE);
	cr_expect_eq(policy_share_right(&s, "alic", false), POLICY_NONE);

	s = share(CONFIG_ANON_READ, false);
	cr_expect_eq(policy_share_right(&s, NULL, true), POLICY_READ);
	cr_expect_eq(policy_share_right(&s, NULL, false), POLICY_NONE);
	cr_expect_eq(policy_share_right(&s, "dave", true), POLICY_READ);
	cr_expect_eq(policy_share_right(&s, "carol", true), POLICY_WRITE);

	s = share(CONFIG_ANON_WRITE, false);
	cr_expect_eq(policy_share_right(&s, NULL, true), POLICY_WRITE);
	cr_expect_eq(policy_share_right(&s, "alice", true), POLICY_WRITE);
	cr_expect_eq(policy_share_right(&s, "alice", false), POLICY_READ);

	s.write_users = (struct config_users){ .any = true };
	cr_expect_eq(policy_share_right(&s, "anyone", false), POLICY_WRITE);
	cr_expect_eq(policy_share_right(&s, NULL, false), POLICY_NONE);
}

Test(policy, read_only_caps)
{
	struct share_conf s = share(CONFIG_ANON_WRITE, true);

	cr_expect_eq(policy_share_right(&s, NULL, true), POLICY_READ);
	cr_expect_eq(policy_share_right(&s, "carol", true), POLICY_READ);
}

Test(policy, answers)
{
	struct share_conf s = share(CONFIG_ANON_NO, false);
	const char *why = NULL;

	/* Before a login, a protected share and a missing one look alike. */
	cr_expect_eq(policy_check(&s, NULL, true, true, false, &why), PROTO_ERR_LOGIN_NEEDED);
	cr_expect_eq(policy_check(NULL, NULL, true, true, false, &why), PROTO_ERR_LOGIN_NEEDED);
	/* After one, a share the user cannot read is a missing one. */
	cr_expect_eq(policy_check(&s, "dave", true, true, false, &why), PROTO_ERR_NOT_FOUND);
	cr_expect_str_eq(why, "no such share");
	cr_expect_eq(policy_check(NULL, "dave", true, true, false, &why), PROTO_ERR_NOT_FOUND);
	cr_expect_str_eq(why, "no such share");
	/* Nobody can log in: 550 for both as well. */
	cr_expect_eq(policy_check(&s, NULL, true, false, false, &why), PROTO_ERR_NOT_FOUND);
	cr_expect_eq(policy_check(NULL, NULL, true, false, false, &why), PROTO_ERR_NOT_FOUND);
	/* Reading and writing. */
	cr_expect_eq(policy_check(&s, "alice", false, true, false, &why), 0);
	cr_expect_eq(policy_check(&s, "alice", false, true, true, &why), PROTO_ERR_FORBIDDEN);
	cr_expect_str_eq(why, "no write access");
	cr_expect_eq(policy_check(&s, "carol", false, true, true, &why), 0);

	s = share(CONFIG_ANON_READ, false);
	cr_expect_eq(policy_check(&s, NULL, true, true, false, &why), 0);
	cr_expect_eq(policy_check(&s, NULL, true, true, true, &why), PROTO_ERR_LOGIN_NEEDED);
	cr_expect_eq(policy_check(&s, NULL, true, false, true, &why), PROTO_ERR_FORBIDDEN);

	s = share(CONFIG_ANON_WRITE, true);
	cr_expect_eq(policy_check(&s, "carol", true, true, true, &why), PROTO_ERR_FORBIDDEN);
	cr_expect_str_eq(why, "read-only share");
}

Test(policy, local_peers)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
	cr_expect(policy_peer_is_local((struct sockaddr *)&in));
	inet_pton(AF_INET, "127.255.3.4", &in.sin_addr);
	cr_expect(policy_peer_is_local((struct sockaddr *)&in));
	inet_pton(AF_INET, "10.0.0.1", &in.sin_addr);
	cr_expect(!policy_peer_is_local((struct sockaddr *)&in));
	inet_pton(AF_INET, "128.0.0.1", &in.sin_addr);
	cr_expect(!policy_peer_is_local((struct sockaddr *)&in));
	inet_pton(AF_INET6, "::1", &in6.sin6_addr);
	cr_expect(policy_peer_is_local((struct sockaddr *)&in6));
	inet_pton(AF_INET6, "::ffff:127.0.0.9", &in6.sin6_addr);
	cr_expect(policy_peer_is_local((struct sockaddr *)&in6));
	inet_pton(AF_INET6, "::ffff:10.0.0.9", &in6.sin6_addr);
	cr_expect(!policy_peer_is_local((struct sockaddr *)&in6));
	inet_pton(AF_INET6, "fe80::1", &in6.sin6_addr);
	cr_expect(!policy_peer_is_local((struct sockaddr *)&in6));
	cr_expect(policy_peer_is_local((struct sockaddr *)&un));
	cr_expect(!policy_peer_is_local(NULL));
}
