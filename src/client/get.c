/* get: downloads through a verified temporary file renamed into place only
 * when the digest matched. */
#define _GNU_SOURCE
#include "transfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary file a signal must not leave behind.  Set before the
 * handler may run and read only by it. */
static char get_cleanup_path[PATH_MAX];
static volatile sig_atomic_t get_cleanup_armed;

/* The one handler here that does more than set a flag: the loop may sit in
 * a blocking read, and a killed download must not litter the user's
 * directory.  unlink() and raise() are async-signal-safe; SA_RESETHAND
 * lets the raised signal end us with the usual status. */
static void get_on_signal(int sig)
{
	int saved = errno;

	if (get_cleanup_armed)
		(void)unlink(get_cleanup_path);
	(void)raise(sig);
	errno = saved;
}

static void get_install_cleanup(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = get_on_signal, .sa_flags = SA_RESETHAND };
	struct sigaction old;

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		/* An ignored signal (nohup) stays ignored.  Without the handler
		 * a signal merely leaves a temporary file behind. */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			(void)sigaction(sigs[i], &sa, NULL);
	}
}

static void get_arm_cleanup(const char *path)
{
	size_t len = strlen(path);

	if (len >= sizeof(get_cleanup_path))
		return;
	memcpy(get_cleanup_path, path, len + 1);
	/* The handler must see the whole path once it sees the flag. */
	atomic_signal_fence(memory_order_seq_cst);
	get_cleanup_armed = 1;
}

struct get_file {
	const char *remote;
	char *dest;
	char *what;             /* "get REMOTE → DEST" */
	int out_fd;             /* stream destination, -1 for a temporary file */
	bool close_out;
	struct client_get_reply meta;
};

/* How a body arrived: the digest of what came, and what went wrong
 * locally (the body is still read to its end to stay in step). */
struct get_result {
	struct digest_value got;
	struct digest_value want;   /* from the END */
	int write_err;
};

/* Receives one DATA frame's len bytes into fd (unless writing failed
 * already, or fd is -1: the bytes are dropped) and the digest.  Returns 0 or a negative errno (reported). */
static int get_frame(struct client *c, const struct get_file *g, uint64_t len,
		     int fd, char *buf, struct digest_ctx *ctx, struct get_result *res)
{
	while (len > 0) {
		ssize_t n = linebuf_read(&c->lb, buf, len < CLIENT_CHUNK ? len : CLIENT_CHUNK);

		if (n <= 0) {
			client_error_connection(c, g->what, (int)n);
			return n < 0 ? (int)n : -ECONNRESET;
		}
		digest_update(ctx, buf, (size_t)n);
		if (res->write_err == 0 && fd >= 0)
			res->write_err = write_full(fd, buf, (size_t)n);
		len -= (uint64_t)n;
	}
	return 0;
}

/* Reports the ABORT the server sent instead of the rest of the body. */
static void get_report_abort(struct client *c, const struct get_file *g,
			     const struct proto_frame *f)
{
	struct proto_status st = {
		.code = f->code ? f->code : PROTO_ERR_INTERNAL,
		.text = f->text,
	};
	char what[CLIENT_WHAT_MAX + 32];

	snprintf(what, sizeof(what), "%s: the server aborted the transfer", g->what);
	client_error_status(c, what, &st);
}

/* Checks the END against what came: exactly size bytes, a digest of our
 * algorithm.  Returns 0, or -EPROTO (reported; the connection stays in
 * step). */
static int get_check_end(struct client *c, const struct get_file *g,
			 const struct proto_frame *f, uint64_t received)
{
	if (received != g->meta.size) {
		client_error(c, CLIENT_FAIL_PROTOCOL,
			     "%s: the server announced %" PRIu64 " bytes and sent %" PRIu64,
			     g->what, g->meta.size, received);
		return -EPROTO;
	}
	if (!f->has_digest || f->digest.alg != c->alg) {
		client_error(c, CLIENT_FAIL_PROTOCOL, "%s: the body ended without a %s digest",
			     g->what, digest_alg_name(c->alg));
		return -EPROTO;
	}
	return 0;
}

/* Reads the body's frames up to its END (or ABORT) into fd, digesting
 * them.  Returns 0 with res filled, 1 when the body failed but the
 * connection is in step (reported), or a negative errno (reported; the
 * connection is gone). */
static int get_body(struct client *c, const struct get_file *g, int fd, char *buf,
		    struct digest_ctx *ctx, struct get_result *res)
{
	uint64_t received = 0;
	struct proto_frame f;
	char *line;
	size_t len;
	int r;

	for (;;) {
		r = client_read_line(c, g->what, &line, &len);
		if (r < 0)
			return r;
		if (proto_parse_frame(line, len, &f) < 0)
			return client_error_line(c, g->what, line);
		if (f.type == PROTO_FRAME_ABORT) {
			get_report_abort(c, g, &f);
			return 1;
		}
		if (f.type == PROTO_FRAME_END)
			break;
		if (f.len > g->meta.size - received) {
			client_error(c, CLIENT_FAIL_PROTOCOL,
				     "%s: the server sends more than the %" PRIu64
				     " bytes it announced", g->what, g->meta.size);
			c->gone = true;
			return -EPROTO;
		}
		r = get_frame(c, g, f.len, fd, buf, ctx, res);
		if (r < 0)
			return r;
		received += f.len;
		progress_update(&c->progress, received);
	}
	if (get_check_end(c, g, &f, received) < 0)
		return 1;
	res->want = f.digest;
	return 0;
}

/* Receives the body into fd.  Returns 0 with res filled (the write error,
 * if any, is the caller's to report), 1 when the body failed but the
 * connection is in step, or a negative errno; all but 0 reported. */
static int get_receive(struct client *c, const struct get_file *g, int fd,
		       char *buf, struct get_result *res)
{
	struct digest_ctx ctx;
	int r;

	*res = (struct get_result){ 0 };
	r = digest_init(&ctx, c->alg);
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what, strerror(-r));
		c->gone = true;
		return r;
	}
	progress_begin(&c->progress, client_basename(g->remote), g->meta.size);
	r = get_body(c, g, fd, buf, &ctx, res);
	progress_end(&c->progress);
	if (r != 0) {
		digest_finish(&ctx);
		return r;
	}
	r = digest_final(&ctx, &res->got);
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: computing the digest: %s",
			     g->what, strerror(-r));
		return 1;
	}
	return 0;
}

static void get_report_mismatch(struct client *c, const struct get_file *g,
				const struct get_result *res, const char *outcome)
{
	char w[DIGEST_TEXT_MAX], h[DIGEST_TEXT_MAX];

	client_error(c, CLIENT_FAIL_PERMANENT,
		     "%s: DIGEST MISMATCH: server sent %s, received %s; %s", g->what,
		     client_digest_text(&res->want, w, sizeof(w)),
		     client_digest_text(&res->got, h, sizeof(h)), outcome);
}

/* Writes straight into g->out_fd (stdout, a FIFO, a device). */
static void get_stream(struct client *c, struct get_file *g, char *buf)
{
	struct get_result res;

	if (get_receive(c, g, g->out_fd, buf, &res) != 0)
		return;
	if (res.write_err)
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: write: %s", g->what,
			     strerror(-res.write_err));
	else if (!digest_equal(&res.got, &res.want))
		get_report_mismatch(c, g, &res, "the output is damaged");
}

static char *get_temp_name(const char *dest)
{
	const char *slash = strrchr(dest, '/');
	const char *name = slash ? slash + 1 : dest;
	int dir_len = slash ? (int)(slash - dest + 1) : 0;
	char *tmpl;

	/* The name is cut so the temporary name stays within NAME_MAX. */
	if (asprintf(&tmpl, "%.*s.%.200s.tcpfile-XXXXXX", dir_len, dest, name) < 0)
		return NULL;
	return tmpl;
}

/* Makes the rename durable.  Returns 0 or -errno. */
static int get_sync_dir(const char *dest)
{
	const char *slash = strrchr(dest, '/');
	char *dir = slash ? strndup(dest, (size_t)(slash - dest + 1)) : strdup(".");
	int fd, r = 0;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	/* Some file systems cannot sync a directory; the rename stands. */
	if (fsync(fd) < 0 && errno != EINVAL)
		r = -errno;
	(void)close(fd);
	return r;
}

/* Gives the temporary file the remote permission bits through the umask,
 * as cp(1) does, and the remote mtime, and makes it durable.  Returns 0 or
 * -errno. */
static int get_finish_temp(int fd, const struct client_get_reply *meta, mode_t umask_bits)
{
	const struct timespec times[2] = {
		{ .tv_nsec = UTIME_OMIT },
		{ .tv_sec = (time_t)meta->mtime_sec, .tv_nsec = meta->mtime_nsec },
	};

	if (fchmod(fd, (mode_t)(meta->mode & 0777) & ~umask_bits) < 0)
		return -errno;
	if (futimens(fd, times) < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Receives into DIR/.NAME.tcpfile-XXXXXX and renames it over the
 * destination only once the digest matched. */
static void get_to_temp(struct client *c, struct get_file *g, char *buf,
			mode_t umask_bits)
{
	struct get_result res;
	char *tmp = get_temp_name(g->dest);
	int fd, r;

	if (!tmp) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what, strerror(ENOMEM));
		c->gone = true;
		return;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s: %s", g->what, tmp,
			     strerror(errno));
		free(tmp);
		/* The body still comes: read past it to stay in step. */
		(void)get_receive(c, g, -1, buf, &res);
		return;
	}
	get_arm_cleanup(tmp);

	r = get_receive(c, g, fd, buf, &res);
	if (r != 0)
		goto err_unlink;
	if (res.write_err) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: write %s: %s", g->what, tmp,
			     strerror(-res.write_err));
		goto err_unlink;
	}
	if (!digest_equal(&res.got, &res.want)) {
		get_report_mismatch(c, g, &res, "nothing written");
		goto err_unlink;
	}
	r = get_finish_temp(fd, &g->meta, umask_bits);
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s: %s", g->what, tmp, strerror(-r));
		goto err_unlink;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s: %s", g->what, tmp,
			     strerror(errno));
		goto err_unlink;
	}
	if (rename(tmp, g->dest) < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what, strerror(errno));
		goto err_unlink;
	}
	get_cleanup_armed = 0;
	r = get_sync_dir(g->dest);
	if (r < 0)
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: syncing the directory: %s",
			     g->what, strerror(-r));
	free(tmp);
	return;

err_unlink:
	if (fd >= 0)
		(void)close(fd);
	(void)unlink(tmp);
	get_cleanup_armed = 0;
	free(tmp);
}

/* Picks where the bytes go: a stream (stdout, or an existing FIFO or
 * device, which rename() must not replace) or a temporary file.  Returns
 * 0 or -1 (reported). */
static int get_open_dest(struct client *c, struct get_file *g)
{
	struct stat st;

	g->out_fd = -1;
	if (strcmp(g->dest, "-") == 0) {
		g->out_fd = STDOUT_FILENO;
		return 0;
	}
	if (stat(g->dest, &st) < 0 || S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
		return 0;
	g->out_fd = open(g->dest, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (g->out_fd < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: %s", g->what, strerror(errno));
		return -1;
	}
	g->close_out = true;
	return 0;
}

/* Sends "GET p[ alg=]" and reads its answer into g->meta.  Returns 1
 * when the body follows, 0 for a reported ERR, or a negative errno
 * (reported; nothing was sent, or the connection is gone). */
static int get_request(struct client *c, struct get_file *g)
{
	char req[PROTO_MAX_LINE + 1];
	char alg[CLIENT_ALG_ARG_MAX];
	struct proto_status st;
	int r;

	r = client_format_request(req, sizeof(req), "GET", g->remote,
				  client_alg_arg(c, alg, sizeof(alg)));
	if (r < 0) {
		client_error(c, CLIENT_FAIL_PERMANENT, "%s: remote path too long", g->what);
		return r;
	}
	r = client_send(c, g->what, req, (size_t)r);
	if (r < 0)
		return r;
	r = client_read_status(c, g->what, &st);
	if (r < 0)
		return r;
	if (!st.ok) {
		client_error_status(c, g->what, &st);
		return 0;
	}
	if (client_parse_get_reply(st.text, &g->meta) < 0)
		return client_error_reply(c, g->what, st.text);
	return 1;
}

static void get_one(struct client *c, struct get_file *g, char *buf, mode_t umask_bits)
{
	if (get_open_dest(c, g) < 0)
		return;
	if (get_request(c, g) <= 0)
		return;
	if (g->out_fd >= 0)
		get_stream(c, g, buf);
	else
		get_to_temp(c, g, buf, umask_bits);
}

static int get_file_init(struct get_file *g, const char *remote,
			 const char *local, bool local_is_dir)
{
	char what[CLIENT_WHAT_MAX];
	size_t len = strlen(local);
	int r;

	*g = (struct get_file){ .remote = remote, .out_fd = -1 };
	if (local_is_dir)
		r = asprintf(&g->dest, "%s%s%s", local,
			     len && local[len - 1] == '/' ? "" : "/",
			     client_basename(remote));
	else
		r = (g->dest = strdup(local)) ? 0 : -1;
	if (r < 0) {
		g->dest = NULL;
		return -ENOMEM;
	}
	g->what = strdup(client_what(what, sizeof(what), "get", remote, g->dest));
	if (!g->what)
		return -ENOMEM;
	return 0;
}

static void get_file_finish(struct get_file *g)
{
	if (g->close_out)
		(void)close(g->out_fd);
	free(g->dest);
	free(g->what);
}

void transfer_get(struct client *c, char *const *remotes, size_t n,
		  const char *local, bool local_is_dir)
{
	char *buf = malloc(CLIENT_CHUNK);
	mode_t umask_bits = umask(0);
	size_t i;

	/* Reading the umask means setting it: put it back at once. */
	(void)umask(umask_bits);
	if (!buf) {
		client_error(c, CLIENT_FAIL_PERMANENT, "get: %s", strerror(ENOMEM));
		return;
	}
	get_install_cleanup();
	for (i = 0; i < n && !c->gone; i++) {
		struct get_file g;

		if (get_file_init(&g, remotes[i], local, local_is_dir) < 0) {
			client_error(c, CLIENT_FAIL_PERMANENT, "get: %s", strerror(ENOMEM));
			get_file_finish(&g);
			break;
		}
		get_one(c, &g, buf, umask_bits);
		get_file_finish(&g);
	}
	if (i < n)
		client_error(c, c->closing ? CLIENT_FAIL_TEMPORARY : CLIENT_FAIL_PROTOCOL,
			     "get: %zu more file%s not received", n - i, n - i == 1 ? "" : "s");
	free(buf);
}
