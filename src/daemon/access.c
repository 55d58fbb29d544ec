/* access: client admission: CIDR rules and per-address connection counts in shared memory. */
#define _GNU_SOURCE
#include "access.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "parse.h"

#define ACCESS_SEPS " \t,"

/* An address as 16 bytes: IPv4 becomes ::ffff:a.b.c.d, the form a
 * dual-stack socket reports it in. */
static bool access_peer_bytes(const struct sockaddr *sa, uint8_t out[16])
{
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, &in->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

		memcpy(out, &in6->sin6_addr, 16);
		return true;
	}
	return false;
}

static bool access_prefix_match(const uint8_t a[16], const uint8_t net[16], unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ net[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static bool access_host_bits_clear(const uint8_t a[16], unsigned prefix)
{
	for (unsigned bit = prefix; bit < 128; bit++)
		if (a[bit / 8] & (0x80 >> (bit % 8)))
			return false;
	return true;
}

/* One rule from tok (NUL-terminated).  Returns NULL or why it is wrong. */
static const char *access_rule_parse(const char *tok, struct access_rule *rule)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(tok, '/');
	size_t alen = slash ? (size_t)(slash - tok) : strlen(tok);
	bool v4 = false;
	uint64_t prefix;

	if (alen == 0 || alen >= sizeof(addr))
		return "expected an IPv4 or IPv6 address";
	memcpy(addr, tok, alen);
	addr[alen] = '\0';
	memset(rule->addr, 0, sizeof(rule->addr));
	if (inet_pton(AF_INET, addr, rule->addr + 12) == 1) {
		rule->addr[10] = 0xff;
		rule->addr[11] = 0xff;
		v4 = true;
	} else if (inet_pton(AF_INET6, addr, rule->addr) != 1) {
		return "expected an IPv4 or IPv6 address (numeric, no host names)";
	}
	if (!slash) {
		rule->prefix = 128;
		return NULL;
	}
	if (parse_u64(slash + 1, &prefix) < 0 || prefix > (v4 ? 32u : 128u))
		return v4 ? "prefix length must be 0..32 for IPv4"
			  : "prefix length must be 0..128 for IPv6";
	rule->prefix = (unsigned)prefix + (v4 ? 96 : 0);
	if (!access_host_bits_clear(rule->addr, rule->prefix))
		return "address has bits set beyond the prefix length";
	return NULL;
}

int access_list_parse(struct access_list *list, const char *text,
		      const char **why, char *bad, size_t badcap)
{
	const char *s = text;
	char tok[INET6_ADDRSTRLEN + 8];
	size_t len;

	for (s += strspn(s, ACCESS_SEPS); *s; s += strspn(s, ACCESS_SEPS)) {
		struct access_rule rule, *rules;
		const char *problem = NULL;

		len = strcspn(s, ACCESS_SEPS);
		if (len >= sizeof(tok)) {
			problem = "expected an IPv4 or IPv6 address";
		} else {
			memcpy(tok, s, len);
			tok[len] = '\0';
			problem = access_rule_parse(tok, &rule);
		}
		if (problem) {
			if (why)
				*why = problem;
			if (bad && badcap)
				snprintf(bad, badcap, "%.*s", (int)len, s);
			return -EINVAL;
		}
		rules = reallocarray(list->rules, list->n + 1, sizeof(*rules));
		if (!rules)
			return -ENOMEM;
		list->rules = rules;
		list->rules[list->n++] = rule;
		s += len;
	}
	return 0;
}

void access_list_finish(struct access_list *list)
{
	free(list->rules);
	list->rules = NULL;
	list->n = 0;
}

bool access_list_match(const struct access_list *list, const struct sockaddr *peer)
{
	uint8_t a[16];

	if (!list || !access_peer_bytes(peer, a))
		return false;
	for (size_t i = 0; i < list->n; i++)
		if (access_prefix_match(a, list->rules[i].addr, list->rules[i].prefix))
			return true;
	return false;
}

bool access_allowed(const struct access_list *allow, const struct access_list *deny,
		    const struct sockaddr *peer)
{
	if (deny && access_list_match(deny, peer))
		return false;
	if (allow && allow->n > 0)
		return access_list_match(allow, peer);
	return true;
}

/* ---- The per-address table ---- */

struct access_table {
	size_t map_size;
	size_t n_slots;
	uint64_t key[2];        /* SipHash key, random per daemon */
	uint64_t entries[];     /* per slot: hash of its peer, 0 = none */
};

/* SipHash-2-4 (Aumasson and Bernstein) over one 16-byte address: keyed, so
 * a client cannot pick an address whose hash collides with another's. */
#define ACCESS_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define ACCESS_SIPROUND(v0, v1, v2, v3) do { \
		v0 += v1; v1 = ACCESS_ROTL(v1, 13); v1 ^= v0; v0 = ACCESS_ROTL(v0, 32); \
		v2 += v3; v3 = ACCESS_ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = ACCESS_ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = ACCESS_ROTL(v1, 17); v1 ^= v2; v2 = ACCESS_ROTL(v2, 32); \
	} while (0)

static uint64_t access_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint64_t access_siphash16(const uint64_t key[2], const uint8_t in[16])
{
	uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ key[0];
	uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ key[1];
	uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ key[0];
	uint64_t v3 = UINT64_C(0x7465646279746573) ^ key[1];
	uint64_t m[3] = { access_le64(in), access_le64(in + 8), UINT64_C(16) << 56 };

	for (int i = 0; i < 3; i++) {
		v3 ^= m[i];
		ACCESS_SIPROUND(v0, v1, v2, v3);
		ACCESS_SIPROUND(v0, v1, v2, v3);
		v0 ^= m[i];
	}
	v2 ^= 0xff;
	for (int i = 0; i < 4; i++)
		ACCESS_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* Never 0, which marks a free entry; 0 for a peer that has no address. */
static uint64_t access_peer_hash(const struct access_table *table,
				 const struct sockaddr *peer)
{
	uint8_t a[16];
	uint64_t h;

	if (!access_peer_bytes(peer, a))
		return 0;
	h = access_siphash16(table->key, a);
	return h ? h : 1;
}

struct access_table *access_table_new(size_t slots)
{
	size_t size = sizeof(struct access_table) + slots * sizeof(uint64_t);
	struct access_table *t;
	uint64_t key[2];

	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		return NULL;
	/* MAP_SHARED: the workers forked later write the same pages. */
	t = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		return NULL;
	t->map_size = size;
	t->n_slots = slots;
	memcpy(t->key, key, sizeof(key));
	return t;
}

void access_table_free(struct access_table *table)
{
	int saved = errno;

	if (table)
		munmap(table, table->map_size);
	errno = saved;
}

static unsigned access_count_hash(const struct access_table *table, uint64_t h)
{
	unsigned n = 0;

	for (size_t i = 0; i < table->n_slots; i++)
		if (__atomic_load_n(&table->entries[i], __ATOMIC_SEQ_CST) == h)
			n++;
	return n;
}

int access_enter(struct access_table *table, size_t slot,
		 const struct sockaddr *peer, unsigned max)
{
	uint64_t h;

	if (!table || slot >= table->n_slots)
		return -EINVAL;
	if (max == 0)
		return 0;
	h = access_peer_hash(table, peer);
	if (h == 0)
		return 0;
	/* Publish first, then count (sequentially consistent): of two
	 * workers racing for the last place, each sees the other's entry, so
	 * the cap can be undershot for an instant but never exceeded. */
	__atomic_store_n(&table->entries[slot], h, __ATOMIC_SEQ_CST);
	if (access_count_hash(table, h) > max) {
		__atomic_store_n(&table->entries[slot], 0, __ATOMIC_SEQ_CST);
		return -EBUSY;
	}
	return 0;
}

void access_leave(struct access_table *table, size_t slot)
{
	if (table && slot < table->n_slots)
		__atomic_store_n(&table->entries[slot], 0, __ATOMIC_SEQ_CST);
}

void access_release_slot(struct access_table *table, size_t slot)
{
	access_leave(table, slot);
}

unsigned access_count(const struct access_table *table, const struct sockaddr *peer)
{
	uint64_t h;

	if (!table)
		return 0;
	h = access_peer_hash(table, peer);
	return h ? access_count_hash(table, h) : 0;
}
