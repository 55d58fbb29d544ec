/* sha256: SHA-256 from OpenSSL's libcrypto, the one digest.c does not
 * compute itself.  It lives in the crypto module (see cryptomod.h), so a
 * process that never asks for SHA-256 never loads libcrypto. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

struct sha256;

/* Returns 0 or -ENOMEM (OpenSSL could not allocate or load its provider). */
int sha256_new(struct sha256 **out);
/* Returns 0 or -EIO. */
int sha256_update(struct sha256 *s, const void *data, size_t len);
/* Writes the digest; s must still be freed.  Returns 0 or -EIO. */
int sha256_final(struct sha256 *s, uint8_t out[SHA256_BYTES]);
/* No-op on NULL. */
void sha256_free(struct sha256 *s);
