/* access: client admission: address rules (hosts_allow / hosts_deny) and
 * concurrent connections per client address (max_per_ip), counted across
 * workers in shared memory. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* One CIDR rule.  IPv4 rules are kept as IPv4-mapped IPv6 (::ffff:a.b.c.d,
 * prefix + 96), so an IPv4 peer of a dual-stack socket matches them. */
struct access_rule {
	uint8_t addr[16];       /* network address, host bits cleared */
	unsigned prefix;        /* 0..128 */
};

struct access_list {
	struct access_rule *rules;
	size_t n;
};

/* Parses a list of rules separated by spaces, tabs or commas: "ADDR" (a
 * single host) or "ADDR/PREFIX", ADDR an IPv4 or IPv6 address in numeric
 * form, PREFIX 0..32 (IPv4) or 0..128 (IPv6) in decimal; host bits set
 * beyond the prefix are an error (they usually mean a typo).  Appends to
 * list (initialise it to zero).  Returns 0, -ENOMEM, or -EINVAL with *why
 * saying what is wrong and the offending rule copied into bad (cut to
 * badcap). */
int access_list_parse(struct access_list *list, const char *text,
		      const char **why, char *bad, size_t badcap);
/* Frees the rules; the list is empty afterwards. */
void access_list_finish(struct access_list *list);

/* True when the peer (AF_INET or AF_INET6; ::ffff:a.b.c.d compares as
 * a.b.c.d) falls in one of the rules.  Other families never match. */
bool access_list_match(const struct access_list *list, const struct sockaddr *peer);

/* tcpd semantics: a peer in deny is refused; when allow is not empty, a
 * peer must be in it.  A peer that is no IP address (a unix socket) is
 * refused only by a non-empty allow list.  Returns true to admit. */
bool access_allowed(const struct access_list *allow, const struct access_list *deny,
		    const struct sockaddr *peer);

/* ---- Connections per address, across workers ---- */

/* A shared anonymous mapping with one entry per worker slot: the keyed
 * hash of the peer that slot is serving (0 when none).  Created by the
 * master before it forks, so every worker sees the same pages. */
struct access_table;

/* slots: how many worker slots (the scoreboard's).  NULL with errno set on
 * failure. */
struct access_table *access_table_new(size_t slots);
/* NULL is a no-op. */
void access_table_free(struct access_table *table);

/* Worker side, right after accept(): records that slot serves peer and
 * counts the slots serving the same address.  Returns 0 (admitted; call
 * access_leave when the connection ends), or -EBUSY when that makes more
 * than max (nothing recorded then).  max 0 means no limit: nothing is
 * recorded and 0 is returned.  Two connections from one address racing
 * at the cap may both be refused, never both admitted over it.  -EINVAL
 * for a slot out of range. */
int access_enter(struct access_table *table, size_t slot,
		 const struct sockaddr *peer, unsigned max);
/* Worker side: the connection of slot has ended. */
void access_leave(struct access_table *table, size_t slot);
/* Master side, after reaping the worker of slot: forgets its connection
 * (a worker killed mid-connection never called access_leave). */
void access_release_slot(struct access_table *table, size_t slot);
/* Slots currently serving peer's address (for tests and status). */
unsigned access_count(const struct access_table *table, const struct sockaddr *peer);
