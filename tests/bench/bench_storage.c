/* bench_storage: the storage layer alone, small uploads in a row (W5 without
 * the network): begin, write, commit COUNT files of SIZE bytes into
 * DIR/SUBDIR, with the digest xattr or not, one commit per file or group
 * commits of BATCH files. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage.h"

static double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct storage_upload up;
	struct digest_value dv;
	struct digest_ctx dc;
	char rel[64], *buf;
	struct storage_limits lim = { .min_free_percent = 1, .umask = 022 };
	struct storage_batch batch;
	unsigned long count, size, per_batch;
	bool durable, xattr;
	double t0, dt;
	int root, r;

	if (argc < 6 || argc > 8) {
		fprintf(stderr, "usage: %s DIR SUBDIR COUNT SIZE DURABLE(0|1) [XATTR(0|1) [BATCH]]\n",
			argv[0]);
		return 2;
	}
	count = strtoul(argv[3], NULL, 10);
	size = strtoul(argv[4], NULL, 10);
	durable = argv[5][0] == '1';
	xattr = argc < 7 || argv[6][0] == '1';
	per_batch = argc < 8 ? 0 : strtoul(argv[7], NULL, 10);
	if (per_batch > STORAGE_BATCH_MAX)
		per_batch = STORAGE_BATCH_MAX;
	storage_batch_init(&batch);
	root = storage_open_root(argv[1]);
	if (root < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(-root));
		return 1;
	}
	buf = malloc(size ? size : 1);
	if (!buf)
		return 1;
	memset(buf, 'x', size);
	t0 = bench_now();
	for (unsigned long i = 0; i < count; i++) {
		struct timespec mtime = { .tv_sec = 1700000000 };

		snprintf(rel, sizeof(rel), "%s/f%06lu", argv[2], i);
		if (digest_init(&dc, DIGEST_XXH3_128) < 0)
			return 1;
		digest_update(&dc, buf, size);
		if (digest_final(&dc, &dv) < 0)
			return 1;
		r = storage_upload_begin(root, rel, size, 0644, true, &lim, &up);
		if (r == 0)
			r = storage_upload_write(&up, buf, size);
		if (r == 0 && per_batch == 0)
			r = storage_upload_commit(&up, true, durable, &mtime,
						  xattr ? &dv : NULL);
		if (r == 0 && per_batch > 0) {
			r = storage_batch_add(&batch, &up, true, &mtime, xattr ? &dv : NULL);
			if (r >= 0 && (storage_batch_count(&batch) == per_batch || i + 1 == count)) {
				r = storage_batch_commit(&batch, durable);
				storage_batch_reset(&batch);
			}
			r = r < 0 ? r : 0;
		}
		if (r < 0) {
			fprintf(stderr, "%s: %s\n", rel, strerror(-r));
			return 1;
		}
	}
	dt = bench_now() - t0;
	printf("%lu files of %lu bytes, durable=%d xattr=%d batch=%lu: %.3f s, %.0f files/s\n",
	       count, size, durable, xattr, per_batch, dt, (double)count / dt);
	storage_batch_finish(&batch);
	free(buf);
	close(root);
	return 0;
}
