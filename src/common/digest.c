/* digest: XXH3-128 (libxxhash) and SHA-256 (sha256.c, in the crypto module)
 * behind one streaming interface.
 *
 * XXH3 is compiled in from libxxhash's header (XXH_INLINE_ALL, the mode
 * its authors document for speed) rather than linked: the shared library
 * cost every tcpfile run ~30 us of loading (an empty C program linked
 * with it starts in 0.39 ms instead of 0.36 ms here), for a function with
 * no input to parse. */
#include "digest.h"
#include "parse.h"
#include "sha256.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

_Static_assert(SHA256_BYTES <= DIGEST_MAX_BYTES, "a SHA-256 digest fits");

#define DIGEST_FD_CHUNK (256 * 1024)

static const struct {
	const char *name;
	size_t len;
} digest_algs[] = {
	[DIGEST_XXH3_128] = { "xxh3-128", 16 },
	[DIGEST_SHA256]   = { "sha256",   32 },
};

#define DIGEST_NALGS (sizeof(digest_algs) / sizeof(digest_algs[0]))

static bool digest_alg_valid(enum digest_alg alg)
{
	return (unsigned)alg < DIGEST_NALGS;
}

const char *digest_alg_name(enum digest_alg alg)
{
	return digest_alg_valid(alg) ? digest_algs[alg].name : "unknown";
}

int digest_alg_from_name(const char *name, size_t len, enum digest_alg *alg)
{
	for (size_t i = 0; i < DIGEST_NALGS; i++) {
		if (strlen(digest_algs[i].name) == len &&
		    strncasecmp(digest_algs[i].name, name, len) == 0) {
			*alg = (enum digest_alg)i;
			return 0;
		}
	}
	return -EINVAL;
}

int digest_init(struct digest_ctx *ctx, enum digest_alg alg)
{
	ctx->alg = alg;
	ctx->state = NULL;

	switch (alg) {
	case DIGEST_XXH3_128: {
		XXH3_state_t *xs = XXH3_createState();
		if (!xs)
			return -ENOMEM;
		if (XXH3_128bits_reset(xs) != XXH_OK) {
			XXH3_freeState(xs);
			return -ENOMEM;
		}
		ctx->state = xs;
		return 0;
	}
	case DIGEST_SHA256: {
		struct sha256 *sha = NULL;
		int r = sha256_new(&sha);
		if (r < 0)
			return r;
		ctx->state = sha;
		return 0;
	}
	}
	return -EINVAL;
}

void digest_finish(struct digest_ctx *ctx)
{
	if (!ctx->state)
		return;
	switch (ctx->alg) {
	case DIGEST_XXH3_128:
		XXH3_freeState(ctx->state);
		break;
	case DIGEST_SHA256:
		sha256_free(ctx->state);
		break;
	}
	ctx->state = NULL;
}

void digest_update(struct digest_ctx *ctx, const void *data, size_t len)
{
	bool ok = true;

	if (!ctx->state || len == 0)
		return;
	switch (ctx->alg) {
	case DIGEST_XXH3_128:
		ok = XXH3_128bits_update(ctx->state, data, len) == XXH_OK;
		break;
	case DIGEST_SHA256:
		ok = sha256_update(ctx->state, data, len) == 0;
		break;
	}
	/* update() has no way to report; a released state makes the
	 * following digest_final() fail instead of returning a wrong hash. */
	if (!ok)
		digest_finish(ctx);
}

int digest_final(struct digest_ctx *ctx, struct digest_value *out)
{
	int r = 0;

	if (!ctx->state)
		return -EIO;

	memset(out, 0, sizeof(*out));
	out->alg = ctx->alg;
	switch (ctx->alg) {
	case DIGEST_XXH3_128: {
		XXH128_canonical_t canon;
		XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(ctx->state));
		_Static_assert(sizeof(canon.digest) == 16, "XXH128 canonical size");
		memcpy(out->bytes, canon.digest, sizeof(canon.digest));
		out->len = sizeof(canon.digest);
		break;
	}
	case DIGEST_SHA256:
		r = sha256_final(ctx->state, out->bytes);
		out->len = SHA256_BYTES;
		break;
	}
	digest_finish(ctx);
	return r;
}

int digest_buffer(enum digest_alg alg, const void *data, size_t len,
		  struct digest_value *out)
{
	struct digest_ctx ctx;
	int r = digest_init(&ctx, alg);
	if (r < 0)
		return r;
	digest_update(&ctx, data, len);
	return digest_final(&ctx, out);
}

int digest_fd(enum digest_alg alg, int fd, struct digest_value *out)
{
	struct digest_ctx ctx;
	off_t off = 0;
	int r;

	/* Heap, not stack: workers may run with a small stack. */
	unsigned char *buf = malloc(DIGEST_FD_CHUNK);
	if (!buf)
		return -ENOMEM;

	r = digest_init(&ctx, alg);
	if (r < 0)
		goto err_free_buf;

	for (;;) {
		ssize_t n = pread(fd, buf, DIGEST_FD_CHUNK, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto err_finish_ctx;
		}
		if (n == 0)
			break;
		digest_update(&ctx, buf, (size_t)n);
		off += n;
	}

	r = digest_final(&ctx, out);
	free(buf);
	return r;

err_finish_ctx:
	digest_finish(&ctx);
err_free_buf:
	free(buf);
	return r;
}

int digest_format(const struct digest_value *d, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";

	if (!digest_alg_valid(d->alg) || d->len != digest_algs[d->alg].len)
		return -EINVAL;

	const char *name = digest_algs[d->alg].name;
	size_t name_len = strlen(name);
	size_t need = name_len + 1 + 2 * d->len;
	if (cap < need + 1)
		return -ENOSPC;

	memcpy(buf, name, name_len);
	char *p = buf + name_len;
	*p++ = ':';
	for (size_t i = 0; i < d->len; i++) {
		*p++ = hex[d->bytes[i] >> 4];
		*p++ = hex[d->bytes[i] & 0xf];
	}
	*p = '\0';
	return (int)need;
}

int digest_parse(const char *text, size_t len, struct digest_value *out)
{
	const char *colon = memchr(text, ':', len);
	enum digest_alg alg;

	if (!colon)
		return -EINVAL;
	if (digest_alg_from_name(text, (size_t)(colon - text), &alg) < 0)
		return -EINVAL;

	const char *hexp = colon + 1;
	size_t hex_len = len - (size_t)(hexp - text);
	size_t dlen = digest_algs[alg].len;
	if (hex_len != 2 * dlen)
		return -EINVAL;

	struct digest_value v = { .alg = alg, .len = dlen };
	for (size_t i = 0; i < dlen; i++) {
		int hi = parse_hex_digit(hexp[2 * i]);
		int lo = parse_hex_digit(hexp[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		v.bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	*out = v;
	return 0;
}

bool digest_equal(const struct digest_value *a, const struct digest_value *b)
{
	return a->alg == b->alg && a->len == b->len &&
	       a->len <= DIGEST_MAX_BYTES &&
	       memcmp(a->bytes, b->bytes, a->len) == 0;
}
