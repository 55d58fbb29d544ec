/* digest: XXH3-128 (default) and SHA-256 behind one streaming interface. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum digest_alg {
	DIGEST_XXH3_128 = 0,
	DIGEST_SHA256 = 1,
};

#define DIGEST_MAX_BYTES 32
#define DIGEST_UNAVAILABLE "sha256 is not available here (the crypto module cannot be loaded)"
/* "sha256:" + 64 hex digits + NUL, the longest text form. */
#define DIGEST_TEXT_MAX 72

struct digest_value {
	enum digest_alg alg;
	size_t len;                       /* 16 or 32 */
	uint8_t bytes[DIGEST_MAX_BYTES];  /* canonical (big-endian) order */
};

struct digest_ctx {
	enum digest_alg alg;
	void *state;                      /* XXH3_state_t * or EVP_MD_CTX * */
};

/* Text names on the wire: "xxh3-128" and "sha256". */
const char *digest_alg_name(enum digest_alg alg);
/* Returns 0 and sets *alg, or -EINVAL. */
int digest_alg_from_name(const char *name, size_t len, enum digest_alg *alg);

/* Returns 0 or -ENOMEM/-EINVAL, or -ELIBACC for SHA-256 when the crypto
 * module cannot be loaded (DIGEST_UNAVAILABLE says so to a peer).  The ctx
 * must then be released by exactly one of digest_final() or
 * digest_finish(). */
int digest_init(struct digest_ctx *ctx, enum digest_alg alg);
void digest_update(struct digest_ctx *ctx, const void *data, size_t len);
/* Writes the result and releases the ctx.  Returns 0 or -EIO. */
int digest_final(struct digest_ctx *ctx, struct digest_value *out);
/* Releases the ctx without a result; no-op on a released/zeroed ctx. */
void digest_finish(struct digest_ctx *ctx);

/* One-shot helpers. */
int digest_buffer(enum digest_alg alg, const void *data, size_t len,
		  struct digest_value *out);
/* Reads fd from offset 0 to EOF with pread (does not move the file offset). */
int digest_fd(enum digest_alg alg, int fd, struct digest_value *out);

/* "xxh3-128:<32 hex>" / "sha256:<64 hex>", lower case.  Returns the length
 * written (excluding NUL) or -ENOSPC. */
int digest_format(const struct digest_value *d, char *buf, size_t cap);
/* Parses the text form (hex in either case).  Returns 0 or -EINVAL. */
int digest_parse(const char *text, size_t len, struct digest_value *out);

bool digest_equal(const struct digest_value *a, const struct digest_value *b);
