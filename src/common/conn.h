/* conn: a connection's byte transport (plain TCP or TLS) behind one set of
 * operations, so sessions and the client do not care which it is. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct conn;
struct conn_ops {
	/* One read: > 0 bytes, 0 on EOF, -errno (-EAGAIN when SO_RCVTIMEO
	 * expired; -EINTR is returned, not retried). */
	ssize_t (*read)(struct conn *c, void *buf, size_t len);
	/* Writes all len bytes, retrying short writes and EINTR; more: more
	 * data follows at once (MSG_MORE), so small headers coalesce with
	 * what comes next.  0 or -errno. */
	int (*write)(struct conn *c, const void *buf, size_t len, bool more);
	/* Sends count bytes of in_fd from *offset (advanced).  0, -errno, or
	 * -ENODATA when the file ended early (it shrank under us). */
	int (*sendfile)(struct conn *c, int in_fd, off_t *offset, uint64_t count);
	/* Bytes readable without waiting on the socket (decrypted TLS records
	 * held by the library); 0 for a plain socket. */
	size_t (*pending)(struct conn *c);
	/* Orderly close (TLS: close_notify, best effort); frees impl and
	 * closes fd. */
	void (*close)(struct conn *c);
};

struct conn {
	int fd;                       /* the socket, for poll() and options */
	const struct conn_ops *ops;
	void *impl;                   /* the transport's state (SSL *), or NULL */
};

/* Wraps a connected socket (taken over: conn_close closes it). */
void conn_init_plain(struct conn *c, int fd);
ssize_t conn_read(struct conn *c, void *buf, size_t len);
int conn_write(struct conn *c, const void *buf, size_t len, bool more);
int conn_sendfile(struct conn *c, int in_fd, off_t *offset, uint64_t count);
size_t conn_pending(struct conn *c);
/* No-op on a closed conn (fd -1). */
void conn_close(struct conn *c);

