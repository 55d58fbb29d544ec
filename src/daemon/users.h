/* users: the users file, one SCRAM-SHA-256 verifier per user (RFC 5803). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USERS_NAME_MAX        64        /* bytes */
#define USERS_KEY_LEN         32        /* SHA-256 output */
#define USERS_SALT_MIN        8         /* bytes, decoded */
#define USERS_SALT_MAX        64
#define USERS_ITER_MIN        4096      /* RFC 7677's minimum */
#define USERS_ITER_MAX        100000000
#define USERS_ERROR_MAX       512
#define USERS_LINE_MAX        1024      /* longest line, newline excluded */

/* One line of the file:
 *   NAME:SCRAM-SHA-256$ITER:SALT$STOREDKEY:SERVERKEY
 * SALT, STOREDKEY and SERVERKEY in standard base64 with padding; the strings
 * are kept as written (GNU SASL takes them in that form) once they decoded
 * to the right lengths. */
struct user {
	char name[USERS_NAME_MAX + 1];
	uint32_t iterations;
	char salt[(USERS_SALT_MAX + 2) / 3 * 4 + 1];
	char stored_key[(USERS_KEY_LEN + 2) / 3 * 4 + 1];
	char server_key[(USERS_KEY_LEN + 2) / 3 * 4 + 1];
	unsigned line;
};

struct users {
	struct user *v;
	size_t n;
	/* The most common iteration count (the first on a tie, or 0 when the
	 * file is empty): what a made-up exchange for an unknown name uses. */
	uint32_t common_iterations;
};

/* True when name (len bytes) is 1..USERS_NAME_MAX of ASCII letters, digits,
 * '.', '_', '-' and '@', not starting with '.' or '-'. */
bool users_name_valid(const char *name, size_t len);

/* Parses one line that is neither blank nor a comment into *u (u->line is
 * left alone).  Returns 0, or -EINVAL with why in *why. */
int users_parse_line(const char *line, size_t len, struct user *u, const char **why);

/* True for a line users_load skips: empty, only blanks, or a '#' comment. */
bool users_line_is_comment(const char *line, size_t len);

/* Writes the file form of u, with a trailing newline, into buf.
 * Returns 0 or -ENOSPC. */
int users_format_line(const struct user *u, char *buf, size_t cap);

/* Loads path: a regular file neither readable, writable nor executable by
 * others and not writable by its group.  On failure returns -errno (-EINVAL
 * for a malformed file, -EPERM for a bad mode or type) and writes
 * "FILE:LINE: why" or "FILE: why" into err. */
int users_load(const char *path, struct users **out, char *err, size_t errlen);

/* Same over a text in memory, without the file checks; name is for messages. */
int users_load_string(const char *text, const char *name, struct users **out,
		      char *err, size_t errlen);

/* Looks a user up by exact name; NULL when absent or users is NULL. */
const struct user *users_find(const struct users *users, const char *name);

void users_free(struct users *users);
