/* test_digest: known vectors, streaming, fd hashing and the text form of digests. */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"

/* Expected values were produced outside this code base:
 *   xxh3-128: `printf '%s' STRING | xxh128sum` (xxhash 0.8.1 CLI, Debian
 *             package "xxhash");
 *   sha256:   `printf '%s' STRING | sha256sum` (GNU coreutils); "" and
 *             "abc" are also the FIPS 180-2 example vectors.
 * The "pattern" vectors hash N bytes of (i * 7 + 3) & 0xff, generated with
 *   python3 -c "import sys; sys.stdout.buffer.write(bytes((i*7+3)&0xff
 *               for i in range(N)))" | xxh128sum   (and | sha256sum)
 * The lengths straddle the XXH3 code paths (0, 1-3, 4-8, 9-16, 17-128,
 * 129-240, >240, several stripes). */
struct vector {
	const char *input;      /* NULL: use the pattern of pattern_len bytes */
	size_t pattern_len;
	const char *xxh3;
	const char *sha256;
};

static const struct vector vectors[] = {
	{ "", 0, "99aa06d3014798d86001c324468d497f",
	  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
	{ "a", 0, "a96faf705af16834e6c632b61e964e1f",
	  "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb" },
	{ "abc", 0, "06b05ab6733a618578af5f94892f3950",
	  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
	{ "The quick brown fox jumps over the lazy dog", 0,
	  "ddd650205ca3e7fa24a1cc2e3a8a7651",
	  "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592" },
	{ "tcpfile", 0, "72a2024cbfdcc55735cab42c44c50161",
	  "afe44542065c6dfad56155dfdb954a8f2046a674f17dc9d532d5fe8565a076c3" },
	{ NULL, 3, "ce31763cbf8245a5a9088dda485b481c",
	  "6ab0dba1f4f1dfbb37b4f9eeb092c09fca4900ad32bdcd147d8dde35d6c87c35" },
	{ NULL, 8, "e3bc8a5f461715553cd024e3d63a1588",
	  "0865c1be255b33b69c4c1b7df3646cd2b7feab36f595044ab191176f1668d9ad" },
	{ NULL, 16, "ce0b9647ab24f88460d75c5e47d40a24",
	  "9c94926dfb94433e790f2c209e2633b2dd3e922b2741ac687e164d488d1ff67c" },
	{ NULL, 17, "bfd327edcc2fbd12eeed7654312a26d7",
	  "bbc485bd3e9865564c1d1fdf5cccf969c6435d86eda9256acf9bba7f5dd69eb7" },
	{ NULL, 128, "1b1962a096bac78bc580008b6c92ac53",
	  "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6" },
	{ NULL, 129, "293e4968c4619023bd91ce7ace4d385b",
	  "307f8fc2c1622b92762e818d39a185d4d667ad49a4b07ceae1f4afa008a93ec4" },
	{ NULL, 240, "ad46c1021b076bc704e0b5f034bee80b",
	  "93fa68266890012c592634767c711c9c23c685eeeff6ddbc76051c0b4e6249bb" },
	{ NULL, 241, "ac6c3492c3d6b45d8beadd3a8874fe17",
	  "c28ffab2409df22fd9d9d6cf68e2d65a67b457eb64ac0dff4758b176ac166b95" },
	{ NULL, 1024, "18bc0eaca9a336369b81661c641c72b1",
	  "e9183d9a79aad8a047b8e67981210d50b01fc75b1edba5bc32ba3d3ec4d5056d" },
	{ NULL, 100003, "45791f178bfff9e8d3c5426780ed98b3",
	  "b4bec991fc613fcb4d2a26eb529e493ed4e3152cc00f0a49bd39b3e48b34824e" },
};

/* 1,000,000 x 'a' (the FIPS long-message vector for SHA-256). */
#define MILLION_A_XXH3   "a545df8e384a9579b1fd6fae5285c4eb"
#define MILLION_A_SHA256 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"

static unsigned char *make_pattern(size_t len)
{
	unsigned char *p = malloc(len ? len : 1);
	cr_assert_not_null(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((i * 7 + 3) & 0xff);
	return p;
}

static void vector_data(const struct vector *v, const void **data, size_t *len,
			unsigned char **owned)
{
	*owned = NULL;
	if (v->input) {
		*data = v->input;
		*len = strlen(v->input);
	} else {
		*owned = make_pattern(v->pattern_len);
		*data = *owned;
		*len = v->pattern_len;
	}
}

/* Formats d and compares the hex part with an expected hex string. */
static void assert_hex(const struct digest_value *d, const char *prefix,
		       const char *hex, size_t input_len)
{
	char text[DIGEST_TEXT_MAX];
	char want[DIGEST_TEXT_MAX];
	int n = digest_format(d, text, sizeof(text));

	snprintf(want, sizeof(want), "%s:%s", prefix, hex);
	cr_assert_eq(n, (int)strlen(want));
	cr_assert_str_eq(text, want, "input of %zu bytes: got %s want %s",
			 input_len, text, want);
}

Test(digest, known_vectors_one_shot)
{
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const void *data;
		size_t len;
		unsigned char *owned;
		struct digest_value d;

		vector_data(&vectors[i], &data, &len, &owned);
		cr_assert_eq(digest_buffer(DIGEST_XXH3_128, data, len, &d), 0);
		cr_assert_eq(d.alg, DIGEST_XXH3_128);
		cr_assert_eq(d.len, 16);
		assert_hex(&d, "xxh3-128", vectors[i].xxh3, len);

		cr_assert_eq(digest_buffer(DIGEST_SHA256, data, len, &d), 0);
		cr_assert_eq(d.alg, DIGEST_SHA256);
		cr_assert_eq(d.len, 32);
		assert_hex(&d, "sha256", vectors[i].sha256, len);
		free(owned);
	}
}

Test(digest, million_a)
{
	size_t len = 1000000;
	char *buf = malloc(len);
	struct digest_value d;

	cr_assert_not_null(buf);
	memset(buf, 'a', len);
	cr_assert_eq(digest_buffer(DIGEST_XXH3_128, buf, len, &d), 0);
	assert_hex(&d, "xxh3-128", MILLION_A_XXH3, len);
	cr_assert_eq(digest_buffer(DIGEST_SHA256, buf, len, &d), 0);
	assert_hex(&d, "sha256", MILLION_A_SHA256, len);
	free(buf);
}

/* Chunk sizes chosen to cross the XXH3 internal 256-byte buffer and its
 * 1024-byte stripes at odd offsets. */
static const size_t chunk_sizes[] = { 1, 2, 3, 7, 13, 63, 64, 65, 255, 256, 257, 1000, 1023, 4099, 65537 };

Test(digest, streaming_odd_chunks_equals_one_shot)
{
	size_t len = 100003;
	unsigned char *buf = make_pattern(len);
	enum digest_alg algs[] = { DIGEST_XXH3_128, DIGEST_SHA256 };

	for (size_t a = 0; a < 2; a++) {
		struct digest_value whole;
		cr_assert_eq(digest_buffer(algs[a], buf, len, &whole), 0);
		for (size_t c = 0; c < sizeof(chunk_sizes) / sizeof(chunk_sizes[0]); c++) {
			struct digest_ctx ctx;
			struct digest_value part;
			cr_assert_eq(digest_init(&ctx, algs[a]), 0);
			for (size_t off = 0; off < len; off += chunk_sizes[c]) {
				size_t n = len - off < chunk_sizes[c] ? len - off : chunk_sizes[c];
				digest_update(&ctx, buf + off, n);
			}
			/* Empty updates must not change anything. */
			digest_update(&ctx, buf, 0);
			cr_assert_eq(digest_final(&ctx, &part), 0);
			cr_assert(digest_equal(&whole, &part),
				  "alg %s, chunk %zu differs", digest_alg_name(algs[a]),
				  chunk_sizes[c]);
			cr_assert_null(ctx.state, "final must release the ctx");
		}
	}
	free(buf);
}

static int make_temp_file(char *path, const void *data, size_t len)
{
	int fd = mkostemp(path, O_CLOEXEC);
	cr_assert_geq(fd, 0);
	const unsigned char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		cr_assert_gt(n, 0);
		p += n;
		len -= (size_t)n;
	}
	return fd;
}

Test(digest, fd_equals_buffer_and_keeps_offset)
{
	/* Over two 256 KiB chunks plus a tail, and the empty file. */
	size_t sizes[] = { 0, 1, 262144, 262145, 600001 };

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		char path[] = "/tmp/test_digest.XXXXXX";
		unsigned char *buf = make_pattern(sizes[s]);
		int fd = make_temp_file(path, buf, sizes[s]);
		off_t before = lseek(fd, 0, SEEK_CUR);

		for (int a = 0; a < 2; a++) {
			struct digest_value from_fd, from_buf;
			cr_assert_eq(digest_fd((enum digest_alg)a, fd, &from_fd), 0);
			cr_assert_eq(digest_buffer((enum digest_alg)a, buf, sizes[s], &from_buf), 0);
			cr_assert(digest_equal(&from_fd, &from_buf), "size %zu alg %d", sizes[s], a);
		}
		cr_assert_eq(lseek(fd, 0, SEEK_CUR), before, "digest_fd moved the offset");
		close(fd);
		unlink(path);
		free(buf);
	}
}

Test(digest, fd_error_is_negative_errno)
{
	struct digest_value d;
	int fds[2];

	cr_assert_eq(digest_fd(DIGEST_SHA256, -1, &d), -EBADF);
	/* A pipe cannot be pread. */
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	cr_assert_eq(digest_fd(DIGEST_XXH3_128, fds[0], &d), -ESPIPE);
	close(fds[0]);
	close(fds[1]);
}

Test(digest, alg_names)
{
	enum digest_alg alg;

	cr_assert_str_eq(digest_alg_name(DIGEST_XXH3_128), "xxh3-128");
	cr_assert_str_eq(digest_alg_name(DIGEST_SHA256), "sha256");
	cr_assert_eq(digest_alg_from_name("sha256", 6, &alg), 0);
	cr_assert_eq(alg, DIGEST_SHA256);
	cr_assert_eq(digest_alg_from_name("xxh3-128", 8, &alg), 0);
	cr_assert_eq(alg, DIGEST_XXH3_128);
	/* Length-delimited: a prefix of a longer token is looked up alone. */
	cr_assert_eq(digest_alg_from_name("sha256:ab", 6, &alg), 0);
	cr_assert_eq(alg, DIGEST_SHA256);
	cr_assert_eq(digest_alg_from_name("sha25", 5, &alg), -EINVAL);
	cr_assert_eq(digest_alg_from_name("md5", 3, &alg), -EINVAL);
	cr_assert_eq(digest_alg_from_name("", 0, &alg), -EINVAL);
	cr_assert_eq(digest_alg_from_name("xxh3", 4, &alg), -EINVAL);
}

Test(digest, init_rejects_unknown_alg)
{
	struct digest_ctx ctx;
	struct digest_value d;

	cr_assert_eq(digest_init(&ctx, (enum digest_alg)7), -EINVAL);
	cr_assert_null(ctx.state);
	digest_finish(&ctx);    /* no-op on a ctx that holds nothing */
	cr_assert_eq(digest_buffer((enum digest_alg)7, "x", 1, &d), -EINVAL);
}

Test(digest, finish_releases_and_final_after_finish_fails)
{
	struct digest_ctx ctx;
	struct digest_value d;

	cr_assert_eq(digest_init(&ctx, DIGEST_SHA256), 0);
	digest_update(&ctx, "abc", 3);
	digest_finish(&ctx);
	cr_assert_null(ctx.state);
	digest_finish(&ctx);    /* twice is harmless */
	cr_assert_eq(digest_final(&ctx, &d), -EIO);

	struct digest_ctx zero = { 0 };
	digest_finish(&zero);
	cr_assert_null(zero.state);
}

Test(digest, format_parse_round_trip)
{
	for (int a = 0; a < 2; a++) {
		struct digest_value d, back;
		char text[DIGEST_TEXT_MAX];

		cr_assert_eq(digest_buffer((enum digest_alg)a, "round trip", 10, &d), 0);
		int n = digest_format(&d, text, sizeof(text));
		cr_assert_gt(n, 0);
		cr_assert_eq(digest_parse(text, (size_t)n, &back), 0);
		cr_assert(digest_equal(&d, &back));
	}
}

Test(digest, format_is_lower_case_and_checks_space)
{
	struct digest_value d = { .alg = DIGEST_XXH3_128, .len = 16 };
	char text[DIGEST_TEXT_MAX];

	memset(d.bytes, 0xAB, 16);
	cr_assert_eq(digest_format(&d, text, sizeof(text)), 41);
	cr_assert_str_eq(text, "xxh3-128:abababababababababababababababab");
	/* Exactly enough (41 + NUL), and one short. */
	cr_assert_eq(digest_format(&d, text, 42), 41);
	cr_assert_eq(digest_format(&d, text, 41), -ENOSPC);
	cr_assert_eq(digest_format(&d, text, 0), -ENOSPC);

	struct digest_value s = { .alg = DIGEST_SHA256, .len = 32 };
	memset(s.bytes, 0xff, 32);
	char big[DIGEST_TEXT_MAX];
	cr_assert_eq(digest_format(&s, big, sizeof(big)), 71);
	cr_assert_eq(strlen(big), 71);
	cr_assert_eq(strspn(big + 7, "f"), 64);
}

Test(digest, parse_accepts_upper_case)
{
	struct digest_value d;
	const char *t = "XXH3-128:06B05AB6733A618578AF5F94892F3950";

	cr_assert_eq(digest_parse(t, strlen(t), &d), 0);
	cr_assert_eq(d.alg, DIGEST_XXH3_128);
	cr_assert_eq(d.len, 16);
	cr_assert_eq(d.bytes[0], 0x06);
	cr_assert_eq(d.bytes[15], 0x50);

	struct digest_value abc;
	cr_assert_eq(digest_buffer(DIGEST_XXH3_128, "abc", 3, &abc), 0);
	cr_assert(digest_equal(&d, &abc));
}

Test(digest, parse_rejects)
{
	static const char *bad[] = {
		"",
		"xxh3-128",
		"xxh3-128:",
		"xxh3-128:06b05ab6733a618578af5f94892f395",     /* 31 hex */
		"xxh3-128:06b05ab6733a618578af5f94892f39500",   /* 33 hex */
		"xxh3-128:06b05ab6733a618578af5f94892f39g0",    /* bad hex */
		"xxh3-128:06b05ab6733a618578af5f94892f39 0",
		"sha256:06b05ab6733a618578af5f94892f3950",      /* 32 hex for sha256 */
		"sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		":06b05ab6733a618578af5f94892f3950",
		"06b05ab6733a618578af5f94892f3950",
		"xxh3-128 06b05ab6733a618578af5f94892f3950",
		"xxh3-128::06b05ab6733a618578af5f94892f395",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct digest_value d = { .alg = DIGEST_SHA256, .len = 7 };
		cr_assert_eq(digest_parse(bad[i], strlen(bad[i]), &d), -EINVAL,
			     "accepted \"%s\"", bad[i]);
		cr_assert_eq(d.len, 7, "\"%s\" wrote the output", bad[i]);
	}
}

Test(digest, parse_is_length_delimited)
{
	/* A token inside a longer line: only len bytes are looked at. */
	const char *line = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad mode=0644";
	struct digest_value d, abc;

	cr_assert_eq(digest_parse(line, 71, &d), 0);
	cr_assert_eq(digest_buffer(DIGEST_SHA256, "abc", 3, &abc), 0);
	cr_assert(digest_equal(&d, &abc));
	cr_assert_eq(digest_parse(line, 72, &d), -EINVAL);
}

Test(digest, equal_compares_alg_and_bytes)
{
	struct digest_value a, b;

	cr_assert_eq(digest_buffer(DIGEST_XXH3_128, "x", 1, &a), 0);
	b = a;
	cr_assert(digest_equal(&a, &b));
	b.bytes[15] ^= 1;
	cr_assert_not(digest_equal(&a, &b));
	b = a;
	b.alg = DIGEST_SHA256;
	cr_assert_not(digest_equal(&a, &b));

	struct digest_value s1, s2;
	cr_assert_eq(digest_buffer(DIGEST_SHA256, "x", 1, &s1), 0);
	cr_assert_eq(digest_buffer(DIGEST_SHA256, "y", 1, &s2), 0);
	cr_assert_not(digest_equal(&s1, &s2));
}
