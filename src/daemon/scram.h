/* scram: the SCRAM-SHA-256 secrets of a users file and their base64 form,
 * computed by GNU SASL.  It lives in the crypto module (see cryptomod.h):
 * only a daemon with a users_file, and `tcpfiled passwd`, load it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_BYTES 32  /* SHA-256 */

/* The base64 text of len bytes into dst (cap bytes, NUL-terminated).
 * Returns 0, -ENOSPC or -ENOMEM. */
int scram_base64(const void *bin, size_t len, char *dst, size_t cap);

/* Whether [s, s+len) is base64, and how many bytes it decodes to.
 * Returns 0, -EINVAL or -ENOMEM. */
int scram_base64_length(const char *s, size_t len, size_t *binlen);

/* Moves a GNU SASL step's output o (olen bytes, gsasl-allocated, freed
 * here in every case) into *out: malloc()ed and NUL-terminated, for the
 * caller to free().  Within the module only (auth.c, login.c).  Returns 0
 * or -ENOMEM. */
int scram_take_output(char *o, size_t olen, char **out, size_t *outlen);

/* StoredKey and ServerKey (RFC 5802) of a password under salt and
 * iterations.  Returns 0, -EINVAL or -ENOMEM. */
int scram_secrets(const char *password, uint32_t iterations, const void *salt,
		  size_t saltlen, unsigned char stored_key[SCRAM_KEY_BYTES],
		  unsigned char server_key[SCRAM_KEY_BYTES]);
