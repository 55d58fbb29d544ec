/* confboard: the reloaded configuration, published for running workers. */
#include "confboard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "netio.h"

struct confboard {
	/* Seqlock: odd while the master writes; readers retry. */
	unsigned seq;
	unsigned gen;        /* 0: nothing usable published */
	size_t len;
	char text[CONFBOARD_TEXT_MAX];
};

struct confboard *confboard_new(void)
{
	struct confboard *b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return b == MAP_FAILED ? NULL : b;
}

void confboard_free(struct confboard *b)
{
	if (b)
		(void)munmap(b, sizeof(*b));
}

int confboard_publish(struct confboard *b, unsigned gen, const char *text, size_t len)
{
	unsigned seq = __atomic_load_n(&b->seq, __ATOMIC_RELAXED);
	bool fits = len <= CONFBOARD_TEXT_MAX;

	__atomic_store_n(&b->seq, seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	if (fits)
		memcpy(b->text, text, len);
	b->len = fits ? len : 0;
	__atomic_store_n(&b->gen, fits ? gen : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&b->seq, seq + 2, __ATOMIC_RELEASE);
	return fits ? 0 : -EFBIG;
}

unsigned confboard_generation(const struct confboard *b)
{
	return __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
}

int confboard_read(const struct confboard *b, char **text, unsigned *gen)
{
	char *copy = NULL;

	for (;;) {
		unsigned seq = __atomic_load_n(&b->seq, __ATOMIC_ACQUIRE);
		size_t len;

		if (seq & 1)
			continue;
		len = __atomic_load_n(&b->len, __ATOMIC_RELAXED);
		*gen = __atomic_load_n(&b->gen, __ATOMIC_RELAXED);
		if (*gen == 0 || len > CONFBOARD_TEXT_MAX) {
			free(copy);
			return -ENODATA;
		}
		free(copy);
		copy = malloc(len + 1);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, b->text, len);
		copy[len] = '\0';
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&b->seq, __ATOMIC_RELAXED) == seq)
			break;
	}
	*text = copy;
	return 0;
}

int confboard_read_file(const char *path, char **text, size_t *len)
{
	size_t cap = CONFBOARD_TEXT_MAX + 1;
	char *buf;
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(cap + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_close;
	}
	n = read_full(fd, buf, cap);
	if (n < 0 || (size_t)n == cap) {
		r = n < 0 ? (int)n : -EFBIG;
		free(buf);
		goto out_close;
	}
	buf[n] = '\0';
	*text = buf;
	*len = (size_t)n;
out_close:
	(void)close(fd);
	return r;
}
