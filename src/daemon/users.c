/* users: the users file, one SCRAM-SHA-256 verifier per user (RFC 5803). */
#include "users.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parse.h"
#include "scram.h"

#define USERS_SCHEME "SCRAM-SHA-256$"

struct users_reader {
	const char *file;
	char *err;
	size_t errlen;
	struct users *users;
	unsigned lineno;
};

__attribute__((format(printf, 5, 6)))
static int users_fail(char *err, size_t errlen, const char *file, unsigned line,
		      const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || errlen == 0)
		return 0;
	if (line)
		n = snprintf(err, errlen, "%s:%u: ", file, line);
	else
		n = snprintf(err, errlen, "%s: ", file);
	if (n < 0 || (size_t)n >= errlen)
		return 0;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return 0;
}

static bool users_is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool users_name_valid(const char *name, size_t len)
{
	size_t i;

	if (len == 0 || len > USERS_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (i = 0; i < len; i++)
		if (!users_is_alnum(name[i]) && !strchr("._-@", name[i]))
			return false;
	return true;
}

bool users_line_is_comment(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	return i == len || line[i] == '#';
}

/* Copies the base64 field [s, s+len) into dst (cap bytes) after checking
 * that it decodes to between min and max bytes. */
static int users_take_base64(const char *s, size_t len, size_t min, size_t max,
			     char *dst, size_t cap)
{
	size_t binlen = 0;
	int r;

	if (len == 0 || len >= cap)
		return -EINVAL;
	r = scram_base64_length(s, len, &binlen);
	if (r < 0)
		return r;
	if (binlen < min || binlen > max)
		return -EINVAL;
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

int users_parse_line(const char *line, size_t len, struct user *u, const char **why)
{
	const char *end = line + len;
	const char *p, *colon, *dollar;
	uint64_t iter;
	int r;

	memset(u, 0, sizeof(*u));
	if (len > 0 && line[len - 1] == '\r')
		end--;
	colon = memchr(line, ':', (size_t)(end - line));
	if (!colon) {
		*why = "expected NAME:SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY";
		return -EINVAL;
	}
	if (!users_name_valid(line, (size_t)(colon - line))) {
		*why = "invalid user name (1 to 64 letters, digits, '.', '_', '-' or '@', "
		       "not starting with '.' or '-')";
		return -EINVAL;
	}
	memcpy(u->name, line, (size_t)(colon - line));
	p = colon + 1;
	if ((size_t)(end - p) < strlen(USERS_SCHEME) ||
	    memcmp(p, USERS_SCHEME, strlen(USERS_SCHEME)) != 0) {
		*why = "unknown scheme (expected SCRAM-SHA-256$)";
		return -EINVAL;
	}
	p += strlen(USERS_SCHEME);
	colon = memchr(p, ':', (size_t)(end - p));
	if (!colon || parse_u64_n(p, (size_t)(colon - p), &iter) < 0 ||
	    iter < USERS_ITER_MIN || iter > USERS_ITER_MAX) {
		*why = "iteration count must be a number between 4096 and 100000000";
		return -EINVAL;
	}
	u->iterations = (uint32_t)iter;
	p = colon + 1;
	dollar = memchr(p, '$', (size_t)(end - p));
	if (!dollar) {
		*why = "missing '$' between the salt and the keys";
		return -EINVAL;
	}
	r = users_take_base64(p, (size_t)(dollar - p), USERS_SALT_MIN, USERS_SALT_MAX,
			      u->salt, sizeof(u->salt));
	if (r < 0) {
		*why = r == -ENOMEM ? "out of memory" :
		       "bad salt (base64 of 8 to 64 bytes expected)";
		return r;
	}
	p = dollar + 1;
	colon = memchr(p, ':', (size_t)(end - p));
	if (!colon) {
		*why = "missing ':' between StoredKey and ServerKey";
		return -EINVAL;
	}
	r = users_take_base64(p, (size_t)(colon - p), USERS_KEY_LEN, USERS_KEY_LEN,
			      u->stored_key, sizeof(u->stored_key));
	if (r == 0)
		r = users_take_base64(colon + 1, (size_t)(end - colon - 1), USERS_KEY_LEN,
				      USERS_KEY_LEN, u->server_key, sizeof(u->server_key));
	if (r < 0) {
		*why = r == -ENOMEM ? "out of memory" :
		       "bad StoredKey or ServerKey (base64 of 32 bytes expected)";
		return r;
	}
	return 0;
}

int users_format_line(const struct user *u, char *buf, size_t cap)
{
	int n;

	n = snprintf(buf, cap, "%s:" USERS_SCHEME "%u:%s$%s:%s\n", u->name,
		     (unsigned)u->iterations, u->salt, u->stored_key, u->server_key);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}

static int users_add_line(struct users_reader *rd, const char *line, size_t len)
{
	struct users *users = rd->users;
	const char *why = NULL;
	struct user *v;
	struct user u;
	int r;

	if (users_line_is_comment(line, len))
		return 0;
	if (len > USERS_LINE_MAX) {
		users_fail(rd->err, rd->errlen, rd->file, rd->lineno,
			   "line longer than %d characters", USERS_LINE_MAX);
		return -EINVAL;
	}
	if (memchr(line, '\0', len)) {
		users_fail(rd->err, rd->errlen, rd->file, rd->lineno, "line contains a NUL byte");
		return -EINVAL;
	}
	r = users_parse_line(line, len, &u, &why);
	if (r < 0) {
		users_fail(rd->err, rd->errlen, rd->file, rd->lineno, "%s", why);
		return r;
	}
	u.line = rd->lineno;
	if (users_find(users, u.name)) {
		users_fail(rd->err, rd->errlen, rd->file, rd->lineno,
			   "%s: duplicate user (first at line %u)", u.name,
			   users_find(users, u.name)->line);
		return -EINVAL;
	}
	v = reallocarray(users->v, users->n + 1, sizeof(*v));
	if (!v) {
		users_fail(rd->err, rd->errlen, rd->file, 0, "out of memory");
		return -ENOMEM;
	}
	users->v = v;
	v[users->n++] = u;
	return 0;
}

static void users_pick_common_iterations(struct users *users)
{
	size_t best = 0, i, j, count;

	users->common_iterations = 0;
	for (i = 0; i < users->n; i++) {
		count = 0;
		for (j = 0; j < users->n; j++)
			if (users->v[j].iterations == users->v[i].iterations)
				count++;
		if (count > best) {
			best = count;
			users->common_iterations = users->v[i].iterations;
		}
	}
}

static struct users *users_new(struct users_reader *rd)
{
	struct users *users = calloc(1, sizeof(*users));

	if (!users)
		users_fail(rd->err, rd->errlen, rd->file, 0, "out of memory");
	rd->users = users;
	return users;
}

int users_load_string(const char *text, const char *name, struct users **out,
		      char *err, size_t errlen)
{
	struct users_reader rd = { .file = name, .err = err, .errlen = errlen };
	const char *nl;
	size_t len;
	int r;

	if (!users_new(&rd))
		return -ENOMEM;
	while (*text) {
		nl = strchr(text, '\n');
		len = nl ? (size_t)(nl - text) : strlen(text);
		rd.lineno++;
		r = users_add_line(&rd, text, len);
		if (r < 0)
			goto err_free;
		text += len + (nl ? 1 : 0);
	}
	users_pick_common_iterations(rd.users);
	*out = rd.users;
	return 0;

err_free:
	users_free(rd.users);
	return r;
}

/* The file's type and mode, checked on the open descriptor. */
static int users_check_file(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0) {
		r = -errno;
		users_fail(err, errlen, path, 0, "%s", strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		users_fail(err, errlen, path, 0, "not a regular file");
		return -EPERM;
	}
	if (st.st_mode & (S_IRWXO | S_IWGRP)) {
		users_fail(err, errlen, path, 0,
			   "mode %04o lets others read or write it, or its group write it "
			   "(chmod 600 or 640)", (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int users_load(const char *path, struct users **out, char *err, size_t errlen)
{
	struct users_reader rd = { .file = path, .err = err, .errlen = errlen };
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *fp;
	int fd, r;

	/* O_NONBLOCK: a FIFO named here must not hang the open. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		users_fail(err, errlen, path, 0, "%s", strerror(-r));
		return r;
	}
	r = users_check_file(fd, path, err, errlen);
	if (r < 0)
		goto err_close;
	fp = fdopen(fd, "r");
	if (!fp) {
		r = -errno;
		users_fail(err, errlen, path, 0, "%s", strerror(-r));
		goto err_close;
	}
	if (!users_new(&rd)) {
		r = -ENOMEM;
		goto err_fclose;
	}
	for (;;) {
		errno = 0;
		n = getline(&buf, &cap, fp);
		if (n < 0) {
			if (ferror(fp)) {
				r = errno ? -errno : -EIO;
				users_fail(err, errlen, path, 0, "%s", strerror(-r));
				goto err_free;
			}
			break;
		}
		if (n > 0 && buf[n - 1] == '\n')
			n--;
		rd.lineno++;
		r = users_add_line(&rd, buf, (size_t)n);
		if (r < 0)
			goto err_free;
	}
	free(buf);
	fclose(fp);
	users_pick_common_iterations(rd.users);
	*out = rd.users;
	return 0;

err_free:
	free(buf);
	users_free(rd.users);
err_fclose:
	fclose(fp);
	return r;
err_close:
	close(fd);
	return r;
}

const struct user *users_find(const struct users *users, const char *name)
{
	size_t i;

	if (!users || !name)
		return NULL;
	for (i = 0; i < users->n; i++)
		if (strcmp(users->v[i].name, name) == 0)
			return &users->v[i];
	return NULL;
}

void users_free(struct users *users)
{
	if (!users)
		return;
	free(users->v);
	free(users);
}
