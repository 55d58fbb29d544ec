/* passwd: `tcpfiled passwd`, which adds or changes a user in the users file. */
#define _GNU_SOURCE
#include "passwd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "build_config.h"
#include "config.h"
#include "cryptomod.h"
#include "netio.h"
#include "parse.h"
#include "scram.h"

__attribute__((format(printf, 3, 4)))
static void passwd_fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int passwd_make_user(const char *name, const char *password, uint32_t iterations,
		     struct user *out)
{
	char salt[PASSWD_SALT_LEN];
	unsigned char server_key[SCRAM_KEY_BYTES], stored_key[SCRAM_KEY_BYTES];
	ssize_t n;
	int r;

	memset(out, 0, sizeof(*out));
	if (!users_name_valid(name, strlen(name)) || password[0] == '\0' ||
	    iterations < USERS_ITER_MIN || iterations > USERS_ITER_MAX)
		return -EINVAL;
	do
		n = getrandom(salt, sizeof(salt), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != sizeof(salt))
		return -EIO;
	r = scram_secrets(password, iterations, salt, sizeof(salt), stored_key, server_key);
	if (r < 0)
		return r;
	strcpy(out->name, name);
	out->iterations = iterations;
	r = scram_base64(salt, sizeof(salt), out->salt, sizeof(out->salt));
	if (r == 0)
		r = scram_base64(stored_key, sizeof(stored_key), out->stored_key,
				 sizeof(out->stored_key));
	if (r == 0)
		r = scram_base64(server_key, sizeof(server_key), out->server_key,
				 sizeof(out->server_key));
	return r;
}

/* Opens and locks path, retrying when another run replaced the file while
 * this one waited for the lock.  Returns the descriptor, -ENOENT when there
 * is no file yet, or -errno. */
static int passwd_open_locked(const char *path)
{
	struct stat a, b;
	int fd;

	for (;;) {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			return -errno;
		while (flock(fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				int r = -errno;

				close(fd);
				return r;
			}
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return fd;
		close(fd);
	}
}

/* Reads the whole (already validated) file into a NUL-terminated buffer. */
static int passwd_read_all(int fd, char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = NULL, *nbuf;
	ssize_t n;

	for (;;) {
		nbuf = realloc(buf, cap + 1);
		if (!nbuf) {
			free(buf);
			return -ENOMEM;
		}
		buf = nbuf;
		n = read_full(fd, buf + len, cap - len);
		if (n < 0) {
			free(buf);
			return (int)n;
		}
		len += (size_t)n;
		if (len < cap)
			break;
		cap *= 2;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* The new file text: old with u's line replaced or appended. */
static int passwd_render(const char *old, const struct user *u, char **out)
{
	char line[USERS_LINE_MAX + 2];
	bool replaced = false;
	const char *why, *nl;
	struct user cur;
	size_t len;
	char *text = NULL;
	size_t tlen = 0;
	FILE *mem;
	int r;

	r = users_format_line(u, line, sizeof(line));
	if (r < 0)
		return r;
	mem = open_memstream(&text, &tlen);
	if (!mem)
		return -ENOMEM;
	while (*old) {
		nl = strchr(old, '\n');
		len = nl ? (size_t)(nl - old) : strlen(old);
		if (!users_line_is_comment(old, len) &&
		    users_parse_line(old, len, &cur, &why) == 0 &&
		    strcmp(cur.name, u->name) == 0) {
			fputs(line, mem);
			replaced = true;
		} else {
			fwrite(old, 1, len, mem);
			fputc('\n', mem);
		}
		old += len + (nl ? 1 : 0);
	}
	if (!replaced)
		fputs(line, mem);
	if (fclose(mem) != 0) {
		free(text);
		return -ENOMEM;
	}
	*out = text;
	return 0;
}

/* Writes text to a temporary file beside path with the given mode and
 * owner, then renames it over path and syncs the directory. */
static int passwd_replace(const char *path, const char *text, mode_t mode, uid_t uid,
			  gid_t gid, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd, dfd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		passwd_fail(err, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		passwd_fail(err, errlen, "%s: %s", tmp, strerror(-r));
		return r;
	}
	if (fchmod(fd, mode) < 0 ||
	    ((uid != geteuid() || gid != getegid()) && fchown(fd, uid, gid) < 0)) {
		r = -errno;
		passwd_fail(err, errlen, "%s: cannot give it the mode and owner of the old file: %s",
			    tmp, strerror(-r));
		goto err_unlink;
	}
	r = write_full(fd, text, strlen(text));
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (r < 0) {
		passwd_fail(err, errlen, "%s: %s", tmp, strerror(-r));
		goto err_unlink;
	}
	if (close(fd) < 0) {
		fd = -1;
		r = -errno;
		passwd_fail(err, errlen, "%s: %s", tmp, strerror(-r));
		goto err_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = -errno;
		passwd_fail(err, errlen, "%s: %s", path, strerror(-r));
		goto err_unlink;
	}
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fsync(dfd) < 0) {
		r = -errno;
		passwd_fail(err, errlen, "%s: renamed, but the directory sync failed: %s",
			    path, strerror(-r));
		if (dfd >= 0)
			close(dfd);
		return r;
	}
	close(dfd);
	return 0;

err_unlink:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return r;
}

int passwd_update_file(const char *path, const struct user *u, char *err, size_t errlen)
{
	struct users *users = NULL;
	mode_t mode = 0600;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	char *old = NULL, *text = NULL;
	struct stat st;
	int fd, r;

	fd = passwd_open_locked(path);
	if (fd < 0 && fd != -ENOENT) {
		passwd_fail(err, errlen, "%s: %s", path, strerror(-fd));
		return fd;
	}
	if (fd >= 0) {
		/* The same checks as the daemon's, so passwd never writes a file
		 * the daemon would then refuse. */
		r = users_load(path, &users, err, errlen);
		users_free(users);
		if (r < 0)
			goto out;
		if (fstat(fd, &st) < 0) {
			r = -errno;
			passwd_fail(err, errlen, "%s: %s", path, strerror(-r));
			goto out;
		}
		mode = st.st_mode & 07777;
		uid = st.st_uid;
		gid = st.st_gid;
		r = passwd_read_all(fd, &old);
		if (r < 0) {
			passwd_fail(err, errlen, "%s: %s", path, strerror(-r));
			goto out;
		}
	}
	r = passwd_render(old ? old : "", u, &text);
	if (r < 0) {
		passwd_fail(err, errlen, "%s: %s", path, strerror(-r));
		goto out;
	}
	r = passwd_replace(path, text, mode, uid, gid, err, errlen);
out:
	free(old);
	free(text);
	if (fd >= 0)
		close(fd);	/* releases the lock, after the rename */
	return r;
}

static volatile sig_atomic_t passwd_interrupted;

static void passwd_on_signal(int sig)
{
	passwd_interrupted = sig;
}

/* One line from fd into buf; the newline (and a CR before it) is dropped.
 * Returns its length, -EMSGSIZE when it does not fit, -ENODATA on EOF
 * before a newline with nothing read, or -errno. */
static int passwd_read_line(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	char c;

	for (;;) {
		n = read(fd, &c, 1);
		if (n < 0)
			return -errno;
		if (n == 0) {
			if (len == 0)
				return -ENODATA;
			break;
		}
		if (c == '\n')
			break;
		if (len + 1 >= cap)
			return -EMSGSIZE;
		buf[len++] = c;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return (int)len;
}

/* Prompts on the terminal with echo off and reads one line. */
static int passwd_prompt(int tty, const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	int r, r2;

	if (tcgetattr(tty, &old) < 0)
		return -errno;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	if (tcsetattr(tty, TCSAFLUSH, &quiet) < 0)
		return -errno;
	r = write_full(tty, prompt, strlen(prompt));
	if (r == 0)
		r = passwd_read_line(tty, buf, cap);
	r2 = tcsetattr(tty, TCSAFLUSH, &old);
	if (r >= 0 && r2 < 0)
		r = -errno;
	return r;
}

static int passwd_read_tty(const char *user, char *buf, size_t cap, char *err, size_t errlen)
{
	struct sigaction sa = { .sa_handler = passwd_on_signal }, old_sa[4];
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	char again[PASSWD_PASSWORD_MAX + 1];
	char prompt[USERS_NAME_MAX + 32];
	size_t i;
	int tty, r;

	tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (tty < 0) {
		r = -errno;
		passwd_fail(err, errlen, "/dev/tty: %s", strerror(-r));
		return r;
	}
	/* No SA_RESTART: a signal ends the read, and the echo comes back. */
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old_sa[i]);
	snprintf(prompt, sizeof(prompt), "Password for %s: ", user);
	r = passwd_prompt(tty, prompt, buf, cap);
	if (r >= 0)
		r = passwd_prompt(tty, "Again: ", again, sizeof(again));
	for (i = 0; i < 4; i++)
		sigaction(sigs[i], &old_sa[i], NULL);
	close(tty);
	if (passwd_interrupted)
		r = -ECANCELED;
	if (r >= 0 && strcmp(buf, again) != 0) {
		passwd_fail(err, errlen, "the passwords do not match");
		r = -EINVAL;
	} else if (r >= 0) {
		r = (int)strlen(buf);
	} else if (r == -ECANCELED || r == -EINTR) {
		passwd_fail(err, errlen, "interrupted");
		r = -ECANCELED;
	} else {
		passwd_fail(err, errlen, "/dev/tty: %s", r == -EMSGSIZE ?
			    "password too long" : r == -ENODATA ? "end of input" : strerror(-r));
	}
	explicit_bzero(again, sizeof(again));
	return r;
}

int passwd_read_password(const char *user, char *buf, size_t cap, char *err, size_t errlen)
{
	int r;

	if (isatty(STDIN_FILENO))
		r = passwd_read_tty(user, buf, cap, err, errlen);
	else {
		r = passwd_read_line(STDIN_FILENO, buf, cap);
		if (r < 0)
			passwd_fail(err, errlen, "standard input: %s", r == -EMSGSIZE ?
				    "password too long" : r == -ENODATA ? "no password" :
				    strerror(-r));
	}
	if (r == 0) {
		passwd_fail(err, errlen, "empty password");
		r = -EINVAL;
	}
	return r;
}

static void passwd_usage(FILE *out)
{
	fprintf(out,
		"Usage: tcpfiled passwd [-c FILE] [-f USERS_FILE] [-i ITERATIONS] USER\n"
		"  -c FILE        configuration naming the users file (default %s)\n"
		"  -f USERS_FILE  users file to edit (instead of the configuration's users_file)\n"
		"  -i ITERATIONS  PBKDF2 iterations, %d to %d (default %d)\n"
		"The password is read twice from the terminal, or as one line from\n"
		"standard input when it is not a terminal.\n",
		TCPFILED_CONFIG_PATH, USERS_ITER_MIN, USERS_ITER_MAX, PASSWD_ITERATIONS_DEFAULT);
}

/* The users file named by -f or by the configuration; *conf keeps it alive. */
static const char *passwd_users_path(const char *users_path, const char *config_path,
				     struct config **conf)
{
	char err[CONFIG_ERROR_MAX];

	if (users_path)
		return users_path;
	if (config_load(config_path, conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "tcpfiled passwd: %s\n", err);
		return NULL;
	}
	if (!(*conf)->users_file) {
		fprintf(stderr, "tcpfiled passwd: %s: no users_file in [server] (or use -f)\n",
			config_path);
		return NULL;
	}
	return (*conf)->users_file;
}

int passwd_main(int argc, char **argv)
{
	const char *config_path = TCPFILED_CONFIG_PATH, *users_path = NULL, *path, *name;
	uint64_t iterations = PASSWD_ITERATIONS_DEFAULT;
	char password[PASSWD_PASSWORD_MAX + 1];
	char err[USERS_ERROR_MAX + PATH_MAX];
	struct config *conf = NULL;
	int status = EX_OK;
	struct user u;
	int opt, r;

	optind = 1;
	while ((opt = getopt(argc, argv, "+c:f:i:h")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			users_path = optarg;
			break;
		case 'i':
			if (parse_u64(optarg, &iterations) < 0 || iterations < USERS_ITER_MIN ||
			    iterations > USERS_ITER_MAX) {
				fprintf(stderr, "tcpfiled passwd: -i: expected %d to %d, got \"%s\"\n",
					USERS_ITER_MIN, USERS_ITER_MAX, optarg);
				return EX_USAGE;
			}
			break;
		case 'h':
			passwd_usage(stdout);
			return EX_OK;
		default:
			passwd_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc - 1) {
		passwd_usage(stderr);
		return EX_USAGE;
	}
	name = argv[optind];
	if (!users_name_valid(name, strlen(name))) {
		fprintf(stderr, "tcpfiled passwd: %s: invalid user name (1 to %d letters, digits, "
			"'.', '_', '-' or '@', not starting with '.' or '-')\n",
			name, USERS_NAME_MAX);
		return EX_USAGE;
	}
	path = passwd_users_path(users_path, config_path, &conf);
	if (!path)
		return EX_CONFIG;
	r = passwd_read_password(name, password, sizeof(password), err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "tcpfiled passwd: %s\n", err);
		status = r == -ECANCELED ? 130 : EX_DATAERR;
		goto out;
	}
	r = passwd_make_user(name, password, (uint32_t)iterations, &u);
	if (r < 0) {
		fprintf(stderr, "tcpfiled passwd: %s\n", r == -EINVAL ?
			"the password is not valid UTF-8 text (SASLprep refused it)" :
			r == -ELIBACC ? CRYPTOMOD_MISSING :
			strerror(-r));
		status = r == -EINVAL ? EX_DATAERR : EX_OSERR;
		goto out;
	}
	r = passwd_update_file(path, &u, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "tcpfiled passwd: %s\n", err);
		status = r == -EINVAL || r == -EPERM ? EX_CONFIG : EX_CANTCREAT;
		goto out;
	}
	fprintf(stderr, "tcpfiled passwd: %s: password of %s set (%u iterations)\n",
		path, name, (unsigned)iterations);
out:
	explicit_bzero(password, sizeof(password));
	config_free(conf);
	return status;
}
