/* conn: a connection's byte transport (plain TCP or TLS) behind one set of
 * operations, so sessions and the client do not care which it is. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conn;

struct conn_ops {
	/* One read: > 0 bytes, 0 on EOF, -errno (-EAGAIN when the
	 * SO_RCVTIMEO expired, -EINTR returned). */
	ssize_t (*read)(struct conn *c, void *buf, size_t len);
	/* Writes all len bytes (retrying short writes/EINTR); more = more data
	 * follows soon (MSG_MORE).  0 or -errno. */
	int (*write)(struct conn *c, const void *buf, size_t len, bool more);
	/* Sends count bytes of in_fd from *offset (advanced); 0, -errno,
	 * -ENODATA if the file shrank. */
	int (*sendfile)(struct conn *c, int in_fd, off_t *offset, uint64_t count);
	/* Bytes that can be read without waiting on the socket (decrypted TLS
	 * records); 0 for plain. */
	size_t (*pending)(struct conn *c);
	/* Orderly close (TLS close_notify, best effort) and free of impl; does
	 * close fd. */
	void (*close)(struct conn *c);
};

struct conn {
	int fd;
	const struct conn_ops *ops;
	void *impl;
};
