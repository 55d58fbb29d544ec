/* cryptoload: finds and loads the crypto module for tcpfiled and tcpfile,
 * and forwards the calls of tls.h, sha256.h, scram.h, auth.h and login.h
 * to it.  The programs link this file; the unit tests link the
 * implementations themselves.
 *
 * A call that makes something (a context, a connection, a digest, a login)
 * loads the module first and fails with -ELIBACC when it cannot, saying
 * why in its error text where it has one.  A call on something made that
 * way finds the module loaded: nothing else could have made it. */
#include "cryptomod.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"

static const struct cryptomod *cryptoload_table;
static char cryptoload_why[2 * PATH_MAX + 256];
static int cryptoload_pinned = -1;     /* cryptomod_pin()'s descriptor */
static char cryptoload_pinned_path[PATH_MAX];

/* Whether dir/sub/CRYPTOMOD_FILE exists, written into path. */
static bool cryptoload_try(const char *dir, int dirlen, const char *sub, char *path, size_t cap)
{
	int len = snprintf(path, cap, "%.*s/%s%s%s", dirlen, dir, sub, *sub ? "/" : "",
			   CRYPTOMOD_FILE);

	return len > 0 && (size_t)len < cap && access(path, F_OK) == 0;
}

/* Where the module is: beside the running program (a build tree), where
 * an installed tree puts it relative to the program (one moved, or staged
 * with DESTDIR), else where it was installed.  A program's own directory
 * is as trusted as the program.  Returns path. */
static const char *cryptoload_find(char *path, size_t cap)
{
	static const char *const from_exe[] = {
		"", TCPFILED_MODULEDIR_FROM_BINDIR, TCPFILED_MODULEDIR_FROM_SBINDIR,
	};
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *slash = NULL;

	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
	}
	for (size_t i = 0; slash && i < sizeof(from_exe) / sizeof(from_exe[0]); i++)
		if ((i == 0 || *from_exe[i]) &&
		    cryptoload_try(exe, (int)(slash - exe), from_exe[i], path, cap))
			return path;
	snprintf(path, cap, "%s/%s", TCPFILED_MODULEDIR, CRYPTOMOD_FILE);
	return path;
}

int cryptomod_pin(void)
{
	char path[PATH_MAX];
	int fd;

	if (cryptoload_pinned >= 0 || cryptoload_table)
		return 0;
	fd = open(cryptoload_find(path, sizeof(path)), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	cryptoload_pinned = fd;
	snprintf(cryptoload_pinned_path, sizeof(cryptoload_pinned_path), "%s", path);
	return 0;
}

/* dlopen()s the pinned file when there is one (through its descriptor:
 * an upgrade that replaced the file since is not seen), else the file
 * cryptoload_find() names.  path gets the name to report. */
static void *cryptoload_open(char *path, size_t cap)
{
	char fdpath[64];

	if (cryptoload_pinned < 0)
		return dlopen(cryptoload_find(path, cap), RTLD_NOW | RTLD_LOCAL);
	snprintf(path, cap, "%s", cryptoload_pinned_path);
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", cryptoload_pinned);
	return dlopen(fdpath, RTLD_NOW | RTLD_LOCAL);
}

const struct cryptomod *cryptomod_get(void)
{
	char path[PATH_MAX];
	const struct cryptomod *t;
	const char *e;
	void *h;

	/* A failure is not remembered: the module may be installed (or
	 * fixed) by the next attempt, which a reload makes in the master. */
	if (cryptoload_table)
		return cryptoload_table;
	h = cryptoload_open(path, sizeof(path));
	if (!h) {
		/* dlerror() names the file, except through a pinned descriptor. */
		e = dlerror();
		snprintf(cryptoload_why, sizeof(cryptoload_why),
			 "cannot load the crypto module (TLS, logins, SHA-256): %s%s%s",
			 cryptoload_pinned >= 0 ? path : "", cryptoload_pinned >= 0 ? ": " : "",
			 e ? e : path);
		return NULL;
	}
	t = dlsym(h, CRYPTOMOD_SYMBOL);
	if (!t || t->abi != CRYPTOMOD_ABI || strcmp(t->version, TCPFILED_VERSION) != 0) {
		snprintf(cryptoload_why, sizeof(cryptoload_why),
			 "%s is not the crypto module of tcpfile %s", path, TCPFILED_VERSION);
		dlclose(h);
		return NULL;
	}
	cryptoload_table = t;
	cryptoload_why[0] = '\0';
	return t;
}

const char *cryptomod_path(void)
{
	static char path[PATH_MAX];

	if (cryptoload_pinned >= 0)
		return cryptoload_pinned_path;
	return cryptoload_find(path, sizeof(path));
}

const char *cryptomod_error(void)
{
	return cryptoload_why[0] ? cryptoload_why : "the crypto module is loaded";
}

bool cryptomod_loaded(void)
{
	return cryptoload_table != NULL;
}

/* cryptomod_get() for a call with an error text. */
static const struct cryptomod *cryptoload_or_explain(char *err, size_t errlen)
{
	const struct cryptomod *m = cryptomod_get();

	if (!m && err && errlen)
		snprintf(err, errlen, "%s", cryptoload_why);
	return m;
}

/* tls.h */

int tls_server_ctx_new(const char *cert, const char *key, int min_version,
		       SSL_CTX **out, char *err, size_t errlen)
{
	const struct cryptomod *m = cryptoload_or_explain(err, errlen);

	*out = NULL;
	return m ? m->tls_server_ctx_new(cert, key, min_version, out, err, errlen) : -ELIBACC;
}

int tls_client_ctx_new(const char *cafile, SSL_CTX **out, char *err, size_t errlen)
{
	const struct cryptomod *m = cryptoload_or_explain(err, errlen);

	*out = NULL;
	return m ? m->tls_client_ctx_new(cafile, out, err, errlen) : -ELIBACC;
}

int tls_client_ctx_new_pinned(SSL_CTX **out, char *err, size_t errlen)
{
	const struct cryptomod *m = cryptoload_or_explain(err, errlen);

	*out = NULL;
	return m ? m->tls_client_ctx_new_pinned(out, err, errlen) : -ELIBACC;
}

void tls_ctx_free(SSL_CTX *ctx)
{
	if (ctx)
		cryptoload_table->tls_ctx_free(ctx);
}

int tls_parse_pin(const char *text, unsigned char pin[TLS_PIN_LEN])
{
	const struct cryptomod *m = cryptomod_get();

	return m ? m->tls_parse_pin(text, pin) : -ELIBACC;
}

int tls_conn_accept(struct conn *c, int fd, SSL_CTX *ctx, int timeout_ms,
		    char *err, size_t errlen)
{
	/* ctx came from the module. */
	return cryptoload_table->tls_conn_accept(c, fd, ctx, timeout_ms, err, errlen);
}

int tls_conn_connect(struct conn *c, int fd, SSL_CTX *ctx, const struct tls_client_opts *o,
		     int timeout_ms, char *err, size_t errlen)
{
	return cryptoload_table->tls_conn_connect(c, fd, ctx, o, timeout_ms, err, errlen);
}

int tls_conn_nonblocking(struct conn *c)
{
	return cryptoload_table->tls_conn_nonblocking(c);
}

int tls_conn_exporter(struct conn *c, unsigned char out[TLS_EXPORTER_LEN])
{
	return cryptoload_table ? cryptoload_table->tls_conn_exporter(c, out) : -EPROTO;
}

bool tls_conn_ktls_send(const struct conn *c)
{
	return cryptoload_table && cryptoload_table->tls_conn_ktls_send(c);
}

const char *tls_conn_version(const struct conn *c)
{
	return cryptoload_table ? cryptoload_table->tls_conn_version(c) : "none";
}

bool tls_ktls_possible(const char **why)
{
	const struct cryptomod *m = cryptomod_get();

	if (!m) {
		*why = cryptoload_why;
		return false;
	}
	return m->tls_ktls_possible(why);
}

/* sha256.h */

int sha256_new(struct sha256 **out)
{
	const struct cryptomod *m = cryptomod_get();

	*out = NULL;
	return m ? m->sha256_new(out) : -ELIBACC;
}

int sha256_update(struct sha256 *s, const void *data, size_t len)
{
	return cryptoload_table->sha256_update(s, data, len);
}

int sha256_final(struct sha256 *s, uint8_t out[SHA256_BYTES])
{
	return cryptoload_table->sha256_final(s, out);
}

void sha256_free(struct sha256 *s)
{
	if (s)
		cryptoload_table->sha256_free(s);
}

/* scram.h */

int scram_base64(const void *bin, size_t len, char *dst, size_t cap)
{
	const struct cryptomod *m = cryptomod_get();

	return m ? m->scram_base64(bin, len, dst, cap) : -ELIBACC;
}

int scram_base64_length(const char *s, size_t len, size_t *binlen)
{
	const struct cryptomod *m = cryptomod_get();

	*binlen = 0;
	return m ? m->scram_base64_length(s, len, binlen) : -ELIBACC;
}

int scram_secrets(const char *password, uint32_t iterations, const void *salt,
		  size_t saltlen, unsigned char stored_key[SCRAM_KEY_BYTES],
		  unsigned char server_key[SCRAM_KEY_BYTES])
{
	const struct cryptomod *m = cryptomod_get();

	return m ? m->scram_secrets(password, iterations, salt, saltlen, stored_key,
				    server_key) : -ELIBACC;
}

/* auth.h */

int auth_init(void)
{
	const struct cryptomod *m = cryptomod_get();

	return m ? m->auth_init() : -ELIBACC;
}

void auth_done(void)
{
	if (cryptoload_table)
		cryptoload_table->auth_done();
}

bool auth_ready(void)
{
	return cryptoload_table && cryptoload_table->auth_ready();
}

int auth_start(struct auth **out, const char *mech, const struct users *users,
	       const unsigned char *cb, size_t cblen)
{
	*out = NULL;
	/* auth_ready() came first: a worker without it offers no login. */
	if (!auth_ready())
		return -EPROTONOSUPPORT;
	return cryptoload_table->auth_start(out, mech, users, cb, cblen);
}

int auth_step(struct auth *a, const char *in, size_t inlen, char **out, size_t *outlen)
{
	return cryptoload_table->auth_step(a, in, inlen, out, outlen);
}

const char *auth_user(const struct auth *a)
{
	return cryptoload_table ? cryptoload_table->auth_user(a) : NULL;
}

const char *auth_claimed_user(const struct auth *a)
{
	return cryptoload_table ? cryptoload_table->auth_claimed_user(a) : NULL;
}

const char *auth_failure_reason(const struct auth *a)
{
	return cryptoload_table ? cryptoload_table->auth_failure_reason(a) : NULL;
}

void auth_free(struct auth *a)
{
	if (a)
		cryptoload_table->auth_free(a);
}

/* login.h */

int login_start(struct login **out, const char *user, const char *password,
		const unsigned char *cb, size_t cblen)
{
	const struct cryptomod *m = cryptomod_get();

	*out = NULL;
	return m ? m->login_start(out, user, password, cb, cblen) : -ELIBACC;
}

const char *login_mechanism(const struct login *l)
{
	return cryptoload_table ? cryptoload_table->login_mechanism(l) : NULL;
}

int login_step(struct login *l, const char *in, size_t inlen, char **out, size_t *outlen)
{
	return cryptoload_table->login_step(l, in, inlen, out, outlen);
}

void login_free(struct login *l)
{
	if (l)
		cryptoload_table->login_free(l);
}
