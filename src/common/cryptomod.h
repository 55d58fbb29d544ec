/* cryptomod: the crypto module, tcpfile-crypto.so, and the table of entry
 * points it exports.
 *
 * Everything that needs OpenSSL (libssl, libcrypto) or GNU SASL -- TLS
 * (tls.c), SHA-256 (sha256.c), SCRAM logins (auth.c, login.c, scram.c) --
 * is built into this one shared module instead of into tcpfiled and
 * tcpfile.  The programs load it with dlopen() the first time they need
 * one of those (cryptoload.c): a daemon without TLS listeners or a
 * users_file, and a client putting a file over plain TCP, never map those
 * libraries.  That saves each tcpfile run about 1 ms of dynamic linking
 * (libcrypto alone has some 4,500 relocations and 4.5 MB to map) and the
 * daemon's pool about 1.5 MiB of resident pages.  The module is looked for
 * beside the running program first (the build tree), then in
 * TCPFILED_MODULEDIR.
 *
 * The table is versioned: a module of another version, or whose shapes
 * differ (CRYPTOMOD_ABI), is refused rather than called through a table of
 * another shape. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "login.h"
#include "scram.h"
#include "sha256.h"
#include "tls.h"
#include "users.h"

#define CRYPTOMOD_FILE    "tcpfile-crypto.so"
#define CRYPTOMOD_SYMBOL  "tcpfile_cryptomod"
/* For messages where cryptomod_error() is not at hand (code that the
 * tests link with the implementations themselves). */
#define CRYPTOMOD_MISSING "the crypto module (" CRYPTOMOD_FILE ") cannot be loaded"

struct cryptomod {
	const char *version;    /* TCPFILED_VERSION of the build */
	uint64_t abi;           /* CRYPTOMOD_ABI of the build */

	/* tls.h */
	int (*tls_server_ctx_new)(const char *cert, const char *key, int min_version,
				  SSL_CTX **out, char *err, size_t errlen);
	int (*tls_client_ctx_new)(const char *cafile, SSL_CTX **out, char *err, size_t errlen);
	int (*tls_client_ctx_new_pinned)(SSL_CTX **out, char *err, size_t errlen);
	void (*tls_ctx_free)(SSL_CTX *ctx);
	int (*tls_parse_pin)(const char *text, unsigned char pin[TLS_PIN_LEN]);
	int (*tls_conn_accept)(struct conn *c, int fd, SSL_CTX *ctx, int timeout_ms,
			       char *err, size_t errlen);
	int (*tls_conn_connect)(struct conn *c, int fd, SSL_CTX *ctx,
				const struct tls_client_opts *o, int timeout_ms,
				char *err, size_t errlen);
	int (*tls_conn_nonblocking)(struct conn *c);
	int (*tls_conn_exporter)(struct conn *c, unsigned char out[TLS_EXPORTER_LEN]);
	bool (*tls_conn_ktls_send)(const struct conn *c);
	const char *(*tls_conn_version)(const struct conn *c);
	bool (*tls_ktls_possible)(const char **why);

	/* sha256.h */
	int (*sha256_new)(struct sha256 **out);
	int (*sha256_update)(struct sha256 *s, const void *data, size_t len);
	int (*sha256_final)(struct sha256 *s, uint8_t out[SHA256_BYTES]);
	void (*sha256_free)(struct sha256 *s);

	/* scram.h */
	int (*scram_base64)(const void *bin, size_t len, char *dst, size_t cap);
	int (*scram_base64_length)(const char *s, size_t len, size_t *binlen);
	int (*scram_secrets)(const char *password, uint32_t iterations, const void *salt,
			     size_t saltlen, unsigned char stored_key[SCRAM_KEY_BYTES],
			     unsigned char server_key[SCRAM_KEY_BYTES]);

	/* auth.h (the daemon's side of a login) */
	int (*auth_init)(void);
	void (*auth_done)(void);
	bool (*auth_ready)(void);
	int (*auth_start)(struct auth **out, const char *mech, const struct users *users,
			  const unsigned char *cb, size_t cblen);
	int (*auth_step)(struct auth *a, const char *in, size_t inlen, char **out,
			 size_t *outlen);
	const char *(*auth_user)(const struct auth *a);
	const char *(*auth_claimed_user)(const struct auth *a);
	const char *(*auth_failure_reason)(const struct auth *a);
	void (*auth_free)(struct auth *a);

	/* login.h (the client's side) */
	int (*login_start)(struct login **out, const char *user, const char *password,
			   const unsigned char *cb, size_t cblen);
	const char *(*login_mechanism)(const struct login *l);
	int (*login_step)(struct login *l, const char *in, size_t inlen, char **out,
			  size_t *outlen);
	void (*login_free)(struct login *l);
};

/* The shapes both sides must agree on -- the table and every structure
 * that crosses it -- folded into one number (FNV-1a over their sizes), so
 * that a module built from another tree is refused even when the version
 * string did not change. */
#define CRYPTOMOD_FNV(h, v) (((h) ^ (uint64_t)(v)) * UINT64_C(1099511628211))
#define CRYPTOMOD_ABI                                                              \
	CRYPTOMOD_FNV(CRYPTOMOD_FNV(CRYPTOMOD_FNV(CRYPTOMOD_FNV(CRYPTOMOD_FNV(            \
	CRYPTOMOD_FNV(UINT64_C(14695981039346656037), sizeof(struct cryptomod)),         \
	sizeof(struct conn)), sizeof(struct conn_ops)), sizeof(struct tls_client_opts)), \
	sizeof(struct user)), sizeof(struct users))

/* The module's table, loading the module the first time (in a daemon,
 * load it in the master before forking so that every worker shares its
 * pages).  NULL when it cannot be loaded: cryptomod_error() says why. */
const struct cryptomod *cryptomod_get(void);
const char *cryptomod_error(void);
/* Whether this process has loaded it. */
bool cryptomod_loaded(void);
/* Opens the module file now without loading it, so that a later
 * cryptomod_get() -- in this process or a child forked from it -- loads
 * this very file even if an upgrade has replaced it meanwhile (a daemon's
 * workers then never mix versions).  Returns 0 or -errno (nothing pinned:
 * cryptomod_get() then looks for the file when it needs it). */
int cryptomod_pin(void);
/* The file cryptomod_get() loads (or would try). */
const char *cryptomod_path(void);
