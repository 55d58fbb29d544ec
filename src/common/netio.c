/* netio: full reads and writes, sendfile and the line buffer, handling EINTR and short counts. */
#include "netio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* sendfile() moves at most about 2 GiB per call; stay well below it. */
#define NETIO_SENDFILE_CHUNK ((size_t)1 << 30)
#define NETIO_DISCARD_CHUNK ((size_t)64 * 1024)

/* EWOULDBLOCK may differ from EAGAIN on some systems; callers test one. */
static int netio_errno(void)
{
	if (errno == EWOULDBLOCK)
		return -EAGAIN;
	return -errno;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	return read_file_full(fd, buf, len, len);
}

ssize_t read_file_full(int fd, void *buf, size_t len, size_t enough)
{
	char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return netio_errno();
		}
		if (n == 0)
			break;
		done += (size_t)n;
		if (done >= enough && done < len)
			break;
	}
	return (ssize_t)done;
}

/* send() until all len bytes are out, retrying EINTR and short counts;
 * falls back to write() for fds that are no sockets (pipes, files). */
static int netio_send_all(int fd, const void *buf, size_t len, int flags)
{
	const char *p = buf;
	/* MSG_NOSIGNAL keeps a vanished peer from killing the process with
	 * SIGPIPE; pipes and files do not take send(), so fall back. */
	bool is_socket = true;

	while (len > 0) {
		ssize_t n;

		if (is_socket)
			n = send(fd, p, len, MSG_NOSIGNAL | flags);
		else
			n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOTSOCK && is_socket) {
				is_socket = false;
				continue;
			}
			return netio_errno();
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_full(int fd, const void *buf, size_t len)
{
	return netio_send_all(fd, buf, len, 0);
}

int pwrite_full(int fd, const void *buf, size_t len, off_t offset)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return netio_errno();
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		offset += n;
	}
	return 0;
}

int sendfile_full(int out_fd, int in_fd, off_t *offset, uint64_t count)
{
	while (count > 0) {
		size_t chunk = count < NETIO_SENDFILE_CHUNK ? (size_t)count
							    : NETIO_SENDFILE_CHUNK;
		ssize_t n = sendfile(out_fd, in_fd, offset, chunk);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return netio_errno();
		}
		/* EOF of in_fd before count: the file was truncated while we
		 * sent it, and the promised length can no longer be met. */
		if (n == 0)
			return -ENODATA;
		count -= (uint64_t)n;
	}
	return 0;
}

int fd_set_cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	if (flags < 0)
		return -errno;
	if (flags & FD_CLOEXEC)
		return 0;
	if (fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

int fd_set_nonblock(int fd, bool on)
{
	int flags = fcntl(fd, F_GETFL);
	int want;

	if (flags < 0)
		return -errno;
	want = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
	if (want == flags)
		return 0;
	if (fcntl(fd, F_SETFL, want) < 0)
		return -errno;
	return 0;
}

int socket_set_timeouts(int fd, uint64_t timeout_ms)
{
	struct timeval tv = {
		.tv_sec = (time_t)(timeout_ms / 1000),
		.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000,
	};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/* ---- the plain socket transport ---- */

static ssize_t conn_plain_read(struct conn *c, void *buf, size_t len)
{
	ssize_t n = read(c->fd, buf, len);

	return n < 0 ? netio_errno() : n;
}

static int conn_plain_write(struct conn *c, const void *buf, size_t len, bool more)
{
	return netio_send_all(c->fd, buf, len, more ? MSG_MORE : 0);
}

static int conn_plain_sendfile(struct conn *c, int in_fd, off_t *offset, uint64_t count)
{
	return sendfile_full(c->fd, in_fd, offset, count);
}

static size_t conn_plain_pending(struct conn *c)
{
	(void)c;
	return 0;
}

static void conn_plain_close(struct conn *c)
{
	/* Everything that mattered was written with write_full's checks; a
	 * close error on a socket loses nothing more. */
	(void)close(c->fd);
}

static const struct conn_ops conn_plain_ops = {
	.read = conn_plain_read,
	.write = conn_plain_write,
	.sendfile = conn_plain_sendfile,
	.pending = conn_plain_pending,
	.close = conn_plain_close,
};

void conn_init_plain(struct conn *c, int fd)
{
	*c = (struct conn){ .fd = fd, .ops = &conn_plain_ops };
}

ssize_t conn_read(struct conn *c, void *buf, size_t len)
{
	return c->ops->read(c, buf, len);
}

int conn_write(struct conn *c, const void *buf, size_t len, bool more)
{
	return c->ops->write(c, buf, len, more);
}

int conn_sendfile(struct conn *c, int in_fd, off_t *offset, uint64_t count)
{
	return c->ops->sendfile(c, in_fd, offset, count);
}

size_t conn_pending(struct conn *c)
{
	return c->ops->pending(c);
}

void conn_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	c->ops->close(c);
	c->fd = -1;
	c->impl = NULL;
}

/* ---- the line buffer ---- */

int linebuf_init(struct linebuf *lb, struct conn *conn, size_t cap)
{
	size_t size = cap > LINEBUF_READ_SIZE ? cap : LINEBUF_READ_SIZE;

	*lb = (struct linebuf){ .conn = conn };
	if (cap == 0)
		return -EINVAL;
	lb->buf = malloc(size);
	if (!lb->buf)
		return -ENOMEM;
	lb->cap = size;
	lb->line_max = cap;
	return 0;
}

void linebuf_finish(struct linebuf *lb)
{
	free(lb->buf);
	lb->buf = NULL;
	lb->cap = lb->line_max = lb->start = lb->end = lb->scanned = 0;
}

/* Moves the unconsumed bytes to the front once they sit in the back half
 * or at the very end, so a line of up to cap bytes always fits. */
static void linebuf_compact(struct linebuf *lb)
{
	size_t pending = lb->end - lb->start;

	if (pending == 0) {
		lb->start = lb->end = 0;
		return;
	}
	if (lb->start == 0)
		return;
	if (lb->start <= lb->cap / 2 && lb->end < lb->cap)
		return;
	memmove(lb->buf, lb->buf + lb->start, pending);
	lb->start = 0;
	lb->end = pending;
}

int linebuf_take_line(struct linebuf *lb, char **line, size_t *len)
{
	size_t pending, lf, n;
	char *p;

	/* The line handed out by the previous call dies here, so the bytes
	 * may move now. */
	linebuf_compact(lb);
	pending = lb->end - lb->start;
	if (lb->scanned < pending) {
		p = memchr(lb->buf + lb->start + lb->scanned, '\n',
			   pending - lb->scanned);
		if (p) {
			lf = (size_t)(p - lb->buf);
			n = lf - lb->start;
			if (n >= lb->line_max)
				return -EMSGSIZE;
			if (n > 0 && lb->buf[lf - 1] == '\r')
				n--;
			lb->buf[lb->start + n] = '\0';
			*line = lb->buf + lb->start;
			*len = n;
			lb->start = lf + 1;
			lb->scanned = 0;
			return 1;
		}
		lb->scanned = pending;
	}
	if (pending >= lb->line_max)
		return -EMSGSIZE;
	return 0;
}

ssize_t linebuf_fill(struct linebuf *lb)
{
	ssize_t n;

	linebuf_compact(lb);
	if (lb->end == lb->cap)
		return -EMSGSIZE;
	n = conn_read(lb->conn, lb->buf + lb->end, lb->cap - lb->end);
	if (n < 0)
		return n;
	lb->end += (size_t)n;
	return n;
}

int linebuf_read_line(struct linebuf *lb, char **line, size_t *len)
{
	for (;;) {
		int r = linebuf_take_line(lb, line, len);
		ssize_t n;

		if (r != 0)
			return r;
		n = linebuf_fill(lb);
		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return lb->end > lb->start ? -EPROTO : 0;
	}
}

size_t linebuf_pending(const struct linebuf *lb)
{
	return lb->end - lb->start;
}

ssize_t linebuf_read(struct linebuf *lb, void *dst, size_t len)
{
	size_t pending = lb->end - lb->start;

	if (len == 0)
		return 0;
	if (pending > 0) {
		size_t n = len < pending ? len : pending;

		memcpy(dst, lb->buf + lb->start, n);
		lb->start += n;
		if (lb->scanned > n)
			lb->scanned -= n;
		else
			lb->scanned = 0;
		return (ssize_t)n;
	}
	/* Nothing buffered: large body reads go straight to the caller's
	 * buffer instead of through ours. */
	for (;;) {
		ssize_t n = conn_read(lb->conn, dst, len);

		if (n != -EINTR)
			return n;
	}
}

int linebuf_discard(struct linebuf *lb, uint64_t len)
{
	char scratch[NETIO_DISCARD_CHUNK];

	while (len > 0) {
		size_t want = len < sizeof(scratch) ? (size_t)len : sizeof(scratch);
		ssize_t n = linebuf_read(lb, scratch, want);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EPIPE;
		len -= (uint64_t)n;
	}
	return 0;
}
