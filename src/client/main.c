/* main: tcpfile's command line: options, commands, exit status. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "client.h"
#include "cryptomod.h"
#include "transfer.h"

/* getopt_long() values of the options that have no short form. */
enum { MAIN_OPT_SHA256 = 256, MAIN_OPT_CAFILE, MAIN_OPT_PIN };

struct main_opts {
	const char *server;
	const char *user;
	const char *cafile;
	const char *pin;
	bool quiet;
	bool no_clobber;
	bool long_format;
	enum digest_alg alg;
};

struct main_command {
	const char *name;
	const char *shortopts;            /* leading ':' for our own messages */
	const struct option *longopts;
	size_t min_args;
	size_t max_args;
	/* Checks the arguments (returns CLIENT_EXIT_USAGE after printing
	 * why) and runs the command; failures are counted in c. */
	int (*run)(struct client *c, const struct main_opts *o, char **args, size_t n);
};

static const char main_help[] =
	"Usage: tcpfile [-s [tcps://]HOST[:PORT]] [-u USER] [--cafile FILE]\n"
	"               [--pin sha256:HEX] [-q] [-h] [-V] COMMAND ...\n"
	"\n"
	"Commands:\n"
	"  put [-n|--no-clobber] [--sha256] LOCAL... REMOTE\n"
	"      Upload files.  REMOTE is SHARE/PATH; with several LOCALs, a trailing\n"
	"      '/' or a bare SHARE it is a directory that gets REMOTE/basename(LOCAL).\n"
	"      LOCAL '-' uploads stdin to the file REMOTE.\n"
	"  get [--sha256] REMOTE... LOCAL\n"
	"      Download files into the directory LOCAL, or one file to the file\n"
	"      LOCAL, or to stdout if LOCAL is '-'.\n"
	"  ls [-l] REMOTE_DIR       list a directory (SHARE lists the share root)\n"
	"  stat REMOTE              show type, size, mtime and mode\n"
	"  rm REMOTE...             delete files and empty directories\n"
	"\n"
	"Options:\n"
	"  -s, --server [tcps://]HOST[:PORT]\n"
	"                           server (default $" CLIENT_SERVER_ENV ", else localhost:5005);\n"
	"                           tcps:// for TLS (port 5006 unless given)\n"
	"  -u, --user USER          log in as USER (default $" CLIENT_USER_ENV "); the password\n"
	"                           from $" CLIENT_PASSWORD_ENV ", ~/.config/tcpfile/credentials\n"
	"                           or the terminal\n"
	"      --cafile FILE        trust the CAs in FILE (PEM) instead of the system's\n"
	"      --pin sha256:HEX     trust exactly the certificate with this SHA-256\n"
	"  -q, --quiet              no progress bar\n"
	"  -h, --help               show this help and exit\n"
	"  -V, --version            show the version and exit\n"
	"\n"
	"Exit status: 0 success, 1 failure, 64 usage, 69 cannot connect,\n"
	"75 temporary server failure, 76 protocol or TLS error, 77 login failed.\n"
	"See tcpfile(1).\n";

static int main_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int main_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("tcpfile: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'tcpfile -h' for help.\n", stderr);
	return CLIENT_EXIT_USAGE;
}

/* ---- commands ---- */

/* Normalises the n REMOTE arguments in place (client_remote_normalize).
 * name is how the usage calls them.  Returns 0 or CLIENT_EXIT_USAGE after
 * saying which one has no share name. */
static int main_remotes(const char *cmd, const char *name, char **args, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *remote = client_remote_normalize(args[i]);

		if (!remote)
			return main_usage_error("%s: %s '%s' must start with a share name",
						cmd, name, args[i]);
		args[i] = remote;
	}
	return 0;
}

static int main_put(struct client *c, const struct main_opts *o, char **args, size_t n)
{
	size_t len = strlen(args[n - 1]), n_local = n - 1;
	bool trailing_slash = len > 0 && args[n - 1][len - 1] == '/';
	const char *remote;
	bool remote_is_dir;

	if (main_remotes("put", "REMOTE", &args[n - 1], 1))
		return CLIENT_EXIT_USAGE;
	remote = args[n - 1];
	/* A bare SHARE is the share root, so it can only be a directory. */
	remote_is_dir = trailing_slash || n_local > 1 || !strchr(remote, '/');
	for (size_t i = 0; i < n_local; i++) {
		if (strcmp(args[i], "-") != 0)
			continue;
		if (n_local > 1)
			return main_usage_error("put: '-' (stdin) must be the only LOCAL");
		if (remote_is_dir)
			return main_usage_error("put: with '-' (stdin), REMOTE must name a file: SHARE/PATH");
	}
	transfer_put(c, args, n_local, remote, remote_is_dir, o->no_clobber);
	return 0;
}

static int main_get(struct client *c, const struct main_opts *o, char **args, size_t n)
{
	const char *local = args[n - 1];
	size_t len = strlen(local), n_remote = n - 1;
	bool local_is_dir = false;
	struct stat st;

	if (main_remotes("get", "REMOTE", args, n_remote))
		return CLIENT_EXIT_USAGE;
	if (strcmp(local, "-") == 0) {
		if (n_remote > 1)
			return main_usage_error("get: '-' (stdout) takes a single REMOTE");
	} else if (stat(local, &st) == 0 && S_ISDIR(st.st_mode)) {
		local_is_dir = true;
	} else if (n_remote > 1 || (len > 0 && local[len - 1] == '/')) {
		return main_usage_error("get: %s: not a directory", local);
	}
	if (client_connect(c) == 0)
		transfer_get(c, args, n_remote, local, local_is_dir);
	return 0;
}

static int main_ls(struct client *c, const struct main_opts *o, char **args, size_t n)
{
	if (main_remotes("ls", "REMOTE_DIR", args, n))
		return CLIENT_EXIT_USAGE;
	if (client_connect(c) == 0)
		client_ls(c, args[0], o->long_format);
	return 0;
}

static int main_stat(struct client *c, const struct main_opts *o, char **args, size_t n)
{
	if (main_remotes("stat", "REMOTE", args, n))
		return CLIENT_EXIT_USAGE;
	if (client_connect(c) == 0)
		client_stat(c, args[0]);
	return 0;
}

static int main_rm(struct client *c, const struct main_opts *o, char **args, size_t n)
{
	if (main_remotes("rm", "REMOTE", args, n))
		return CLIENT_EXIT_USAGE;
	if (client_connect(c) == 0)
		client_rm(c, args, n);
	return 0;
}

static const struct option main_put_longopts[] = {
	{ "no-clobber", no_argument, NULL, 'n' },
	{ "sha256", no_argument, NULL, MAIN_OPT_SHA256 },
	{ NULL, 0, NULL, 0 },
};

static const struct option main_get_longopts[] = {
	{ "sha256", no_argument, NULL, MAIN_OPT_SHA256 },
	{ NULL, 0, NULL, 0 },
};

static const struct option main_no_longopts[] = {
	{ NULL, 0, NULL, 0 },
};

static const struct main_command main_commands[] = {
	{ "put", ":n", main_put_longopts, 2, SIZE_MAX, main_put },
	{ "get", ":", main_get_longopts, 2, SIZE_MAX, main_get },
	{ "ls", ":l", main_no_longopts, 1, 1, main_ls },
	{ "stat", ":", main_no_longopts, 1, 1, main_stat },
	{ "rm", ":", main_no_longopts, 1, SIZE_MAX, main_rm },
};

/* ---- option parsing ---- */

static int main_bad_option(const char *cmd, int optopt_value, const char *arg)
{
	if (optopt_value > 0 && optopt_value < 256)
		return main_usage_error("%s%sunknown option '-%c'", cmd, *cmd ? ": " : "",
					optopt_value);
	return main_usage_error("%s%sunknown option '%s'", cmd, *cmd ? ": " : "", arg);
}

/* Parses the command's own options; argv[0] is the command name.  Sets
 * *first to the first operand.  Returns 0 or CLIENT_EXIT_USAGE. */
static int main_command_options(const struct main_command *cmd, int argc,
				char **argv, struct main_opts *o, int *first)
{
	int opt;

	/* 0, not 1: makes glibc's getopt start afresh on a new vector. */
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, cmd->shortopts, cmd->longopts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			o->no_clobber = true;
			break;
		case 'l':
			o->long_format = true;
			break;
		case MAIN_OPT_SHA256:
			o->alg = DIGEST_SHA256;
			break;
		default:
			return main_bad_option(cmd->name, optopt, argv[optind - 1]);
		}
	}
	*first = optind;
	return 0;
}

/* Parses the options before COMMAND.  Returns -1 to go on, or the exit
 * status (-h, -V, usage errors). */
static int main_global_options(int argc, char **argv, struct main_opts *o)
{
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "user", required_argument, NULL, 'u' },
		{ "cafile", required_argument, NULL, MAIN_OPT_CAFILE },
		{ "pin", required_argument, NULL, MAIN_OPT_PIN },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	opterr = 0;
	/* '+': stop at COMMAND, whose options are its own. */
	while ((opt = getopt_long(argc, argv, "+:s:u:qhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			o->server = optarg;
			break;
		case 'u':
			o->user = optarg;
			break;
		case MAIN_OPT_CAFILE:
			o->cafile = optarg;
			break;
		case MAIN_OPT_PIN:
			o->pin = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'h':
			fputs(main_help, stdout);
			return fflush(stdout) == 0 ? CLIENT_EXIT_OK : CLIENT_EXIT_FAILED;
		case 'V':
			printf("tcpfile %s (protocol %d)\n", TCPFILED_VERSION, PROTO_VERSION);
			return fflush(stdout) == 0 ? CLIENT_EXIT_OK : CLIENT_EXIT_FAILED;
		case ':':
			return main_usage_error("option '%s' needs an argument",
						argv[optind - 1]);
		default:
			return main_bad_option("", optopt, argv[optind - 1]);
		}
	}
	return -1;
}

static int main_server(const struct main_opts *o, struct client_server *srv)
{
	const char *spec = o->server;

	if (!spec) {
		spec = getenv(CLIENT_SERVER_ENV);
		if (!spec || !*spec)
			spec = CLIENT_DEFAULT_HOST;
	}
	if (client_server_parse(spec, srv) < 0)
		return main_usage_error("bad server address '%s' ([tcps://]HOST[:PORT] or "
					"[tcps://][IPV6][:PORT])", spec);
	return 0;
}

/* The user (-u, else $TCPFILE_USER), the pin and the TLS context, checked
 * against the server's scheme.  Returns 0, or an exit status after saying
 * why. */
static int main_security(const struct main_opts *o, const struct client_server *srv,
			 unsigned char pin[TLS_PIN_LEN], struct client_security *sec)
{
	char err[TLS_ERROR_MAX];
	const char *user = o->user;
	int r;

	*sec = (struct client_security){ .cafile = o->cafile };
	if (!user) {
		user = getenv(CLIENT_USER_ENV);
		if (user && !*user)
			user = NULL;
	}
	if (user && !*user)
		return main_usage_error("-u: empty user name");
	sec->user = user;
	if (!srv->tls) {
		if (o->cafile || o->pin)
			return main_usage_error("%s needs a TLS server: -s tcps://HOST[:PORT]",
						o->pin ? "--pin" : "--cafile");
		return 0;
	}
	if (o->pin) {
		r = tls_parse_pin(o->pin, pin);
		if (r == -ELIBACC) {
			fprintf(stderr, "tcpfile: TLS: %s\n", cryptomod_error());
			return CLIENT_EXIT_FAILED;
		}
		if (r < 0)
			return main_usage_error("--pin: want sha256: and 64 hex digits, got '%s'",
						o->pin);
		sec->pin = pin;
	}
	/* A pin decides alone: no CA store to read. */
	if ((sec->pin ? tls_client_ctx_new_pinned(&sec->tls_ctx, err, sizeof(err))
		      : tls_client_ctx_new(o->cafile, &sec->tls_ctx, err, sizeof(err))) < 0) {
		fprintf(stderr, "tcpfile: TLS: %s\n", err);
		return CLIENT_EXIT_FAILED;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct main_opts o = { .alg = DIGEST_XXH3_128 };
	const struct main_command *cmd = NULL;
	struct sigaction ignore = { .sa_handler = SIG_IGN };
	unsigned char pin[TLS_PIN_LEN];
	struct client_security sec;
	struct client_server srv;
	struct client c;
	char **cargv;
	int cargc, first = 0, r;
	size_t n_args;

	r = main_global_options(argc, argv, &o);
	if (r >= 0)
		return r;
	if (optind >= argc)
		return main_usage_error("missing COMMAND (put, get, ls, stat, rm)");
	for (size_t i = 0; i < sizeof(main_commands) / sizeof(main_commands[0]); i++)
		if (strcmp(argv[optind], main_commands[i].name) == 0)
			cmd = &main_commands[i];
	if (!cmd)
		return main_usage_error("unknown command '%s'", argv[optind]);

	cargv = argv + optind;
	cargc = argc - optind;
	r = main_command_options(cmd, cargc, cargv, &o, &first);
	if (r)
		return r;
	n_args = (size_t)(cargc - first);
	if (n_args < cmd->min_args)
		return main_usage_error("%s: missing arguments", cmd->name);
	if (n_args > cmd->max_args)
		return main_usage_error("%s: too many arguments", cmd->name);
	if (main_server(&o, &srv))
		return CLIENT_EXIT_USAGE;
	/* Before a byte goes out: a transfer that could not be checked is
	 * not made. */
	if (o.alg == DIGEST_SHA256 && !cryptomod_get()) {
		fprintf(stderr, "tcpfile: --sha256: %s\n", cryptomod_error());
		return CLIENT_EXIT_FAILED;
	}
	r = main_security(&o, &srv, pin, &sec);
	if (r)
		return r;

	/* Socket writes use MSG_NOSIGNAL; this covers a closed stdout pipe,
	 * which then fails with EPIPE and is reported. */
	sigemptyset(&ignore.sa_mask);
	if (sigaction(SIGPIPE, &ignore, NULL) < 0) {
		fprintf(stderr, "tcpfile: sigaction: %s\n", strerror(errno));
		tls_ctx_free(sec.tls_ctx);
		return CLIENT_EXIT_FAILED;
	}

	client_init(&c, &srv, o.alg, !o.quiet && isatty(STDERR_FILENO));
	client_set_security(&c, &sec);
	r = cmd->run(&c, &o, cargv + first, n_args);
	if (r == 0 && (fflush(stdout) != 0 || ferror(stdout)))
		client_error(&c, CLIENT_FAIL_PERMANENT, "stdout: %s", strerror(errno));
	if (r == 0)
		r = client_exit_status(&c);
	client_finish(&c);
	tls_ctx_free(sec.tls_ctx);
	return r;
}
