/* policy: who may read or write a share: anonymous=, read_users=,
 * write_users= and the read_only cap, decided per request. */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

#include "config.h"

enum policy_right {
	POLICY_NONE,
	POLICY_READ,
	POLICY_WRITE,
};

/* True for a peer on the machine itself: a loopback address (127.0.0.0/8,
 * ::1, ::ffff:127.0.0.0/104) or a unix socket. */
bool policy_peer_is_local(const struct sockaddr *sa);

/* What user (NULL: nobody logged in) may do on share.  anonymous_ok: the
 * share's anonymous= counts for this connection (a local peer, or
 * anonymous_remote = yes); it counts for a logged-in user too.
 * write_users implies read; read_only caps everything at POLICY_READ. */
enum policy_right policy_share_right(const struct share_conf *share, const char *user,
				     bool anonymous_ok);

/* The answer to a request on share (NULL: no share of that name) that
 * needs write (PUT, DEL) or only read access: 0 when allowed, else the
 * status with *why.  Without a login (user NULL) and logins_exist, a
 * share the connection cannot read gets 530 whether it exists or not;
 * after a login (or when nobody can log in) a share the user cannot read
 * gets 550 exactly like a nonexistent one; a write without write access
 * gets 553 (530 before a login that might grant it). */
int policy_check(const struct share_conf *share, const char *user, bool anonymous_ok,
		 bool logins_exist, bool write, const char **why);
