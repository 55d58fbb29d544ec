/* netio: the one place that loops over partial reads and writes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"

/* Reads until len bytes, EOF or error.  Retries EINTR.  Returns the number
 * of bytes read (less than len only at EOF) or -errno (-EAGAIN when a
 * SO_RCVTIMEO expired). */
ssize_t read_full(int fd, void *buf, size_t len);

/* read_full for a regular file that should hold enough (<= len) bytes: a
 * read that comes back short once enough bytes are in ends it, since a
 * regular file's read is short only at its end -- which saves the read
 * that would return 0 (asking for one byte more than a file should hold
 * then costs one read, not two).  Returns as read_full. */
ssize_t read_file_full(int fd, void *buf, size_t len, size_t enough);

/* Writes all len bytes.  Sockets are written with MSG_NOSIGNAL.  Retries
 * EINTR and short writes.  Returns 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);

/* pwrite()s all len bytes at offset.  Returns 0 or -errno. */
int pwrite_full(int fd, const void *buf, size_t len, off_t offset);

/* sendfile()s count bytes of in_fd from *offset to out_fd, advancing
 * *offset.  Returns 0, -EPIPE-style -errno, or -ENODATA if the file shrank
 * under us.  sendfile() takes no MSG_NOSIGNAL: a process that sends to a
 * socket this way must ignore SIGPIPE to get -EPIPE instead of dying. */
int sendfile_full(int out_fd, int in_fd, off_t *offset, uint64_t count);

/* Sets O_CLOEXEC / O_NONBLOCK.  Return 0 or -errno. */
int fd_set_cloexec(int fd);
int fd_set_nonblock(int fd, bool on);

/* Sets SO_RCVTIMEO and SO_SNDTIMEO (0 = none).  Returns 0 or -errno. */
int socket_set_timeouts(int fd, uint64_t timeout_ms);

/* Buffered line reader over a connection, also used for the body bytes
 * that follow a line (a pipelining client may have sent them in the same
 * segment). */
/* A linebuf reads up to this much at a time (or a line's length when
 * that is more): a pipelining peer's small requests and bodies come in
 * with a few reads, not one or two per request. */
#define LINEBUF_READ_SIZE (64 * 1024)

struct linebuf {
	struct conn *conn;  /* not owned */
	char *buf;
	size_t cap;      /* size of buf: max(line_max, LINEBUF_READ_SIZE) */
	size_t line_max; /* max line length + terminator */
	size_t start;    /* first unconsumed byte */
	size_t end;      /* one past the last buffered byte */
	size_t scanned;  /* bytes of [start,end) known to hold no LF */
};

/* cap bounds the longest line including its LF (the buffer may be
 * larger).  Returns 0, -EINVAL (cap 0) or -ENOMEM. */
int linebuf_init(struct linebuf *lb, struct conn *conn, size_t cap);
void linebuf_finish(struct linebuf *lb);

/* Extracts one buffered line without reading: returns 1 and sets *line
 * (NUL-terminated in place, LF or CRLF stripped, valid until the next call)
 * and *len; 0 when no full line is buffered yet; -EMSGSIZE when cap bytes
 * (linebuf_init's) hold no LF (the framing is lost). */
int linebuf_take_line(struct linebuf *lb, char **line, size_t *len);

/* One read() into the buffer.  Returns bytes read (> 0), 0 on EOF, or
 * -errno (-EINTR is returned, not retried, so callers can check flags). */
ssize_t linebuf_fill(struct linebuf *lb);

/* Waits for and returns the next line: fills as needed, retrying EINTR.
 * Returns 1 with *line set, 0 on clean EOF before any byte of a line,
 * -EMSGSIZE, -EPROTO on EOF inside a line, or -errno. */
int linebuf_read_line(struct linebuf *lb, char **line, size_t *len);

/* Bytes already buffered beyond the last line taken. */
size_t linebuf_pending(const struct linebuf *lb);

/* Reads up to len body bytes: buffered bytes first, then straight from the
 * fd.  Returns > 0, 0 on EOF, or -errno; retries EINTR. */
ssize_t linebuf_read(struct linebuf *lb, void *dst, size_t len);

/* Reads and drops exactly len body bytes.  Returns 0, -EPIPE on early EOF,
 * or -errno. */
int linebuf_discard(struct linebuf *lb, uint64_t len);
