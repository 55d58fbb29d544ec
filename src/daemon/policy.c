/* policy: who may read or write a share, decided per request. */
#include "policy.h"

#include <netinet/in.h>
#include <string.h>

#include "protocol.h"

bool policy_peer_is_local(const struct sockaddr *sa)
{
	if (!sa)
		return false;
	switch (sa->sa_family) {
	case AF_UNIX:
		return true;
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
	}
	default:
		return false;
	}
}

static bool policy_listed(const struct config_users *u, const char *user)
{
	if (u->any)
		return true;
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->names[i], user) == 0)
			return true;
	return false;
}

enum policy_right policy_share_right(const struct share_conf *share, const char *user,
				     bool anonymous_ok)
{
	enum policy_right r = POLICY_NONE;

	if (anonymous_ok && share->anonymous == CONFIG_ANON_WRITE)
		r = POLICY_WRITE;
	else if (anonymous_ok && share->anonymous == CONFIG_ANON_READ)
		r = POLICY_READ;
	if (user && policy_listed(&share->write_users, user))
		r = POLICY_WRITE;
	else if (user && r == POLICY_NONE && policy_listed(&share->read_users, user))
		r = POLICY_READ;
	if (share->read_only && r == POLICY_WRITE)
		r = POLICY_READ;
	return r;
}

int policy_check(const struct share_conf *share, const char *user, bool anonymous_ok,
		 bool logins_exist, bool write, const char **why)
{
	enum policy_right r = share ? policy_share_right(share, user, anonymous_ok) : POLICY_NONE;
	bool may_log_in = !user && logins_exist;

	if (r == POLICY_NONE) {
		/* Nothing tells a protected share from a missing one. */
		if (may_log_in) {
			*why = "login required";
			return PROTO_ERR_LOGIN_NEEDED;
		}
		*why = "no such share";
		return PROTO_ERR_NOT_FOUND;
	}
	if (write && r != POLICY_WRITE) {
		if (share->read_only) {
			*why = "read-only share";
			return PROTO_ERR_FORBIDDEN;
		}
		if (may_log_in) {
			*why = "login required";
			return PROTO_ERR_LOGIN_NEEDED;
		}
		*why = "no write access";
		return PROTO_ERR_FORBIDDEN;
	}
	return 0;
}
