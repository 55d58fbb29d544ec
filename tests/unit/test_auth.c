/* Unit tests for auth (server) and login (client): whole SCRAM exchanges
 * in one process, and the RFC 7677 vector through the verifier handling. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "login.h"
#include "passwd.h"
#include "users.h"

#define RFC_LINE "user:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$" \
	"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="

static struct users *users;
static const unsigned char cb_a[32] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const unsigned char cb_b[32] = { 1, 2, 3, 4, 5, 6, 7, 9 };

/* alice/wonderland and bob/builder at 4096 rounds, plus RFC 7677's user. */
static void setup(void)
{
	char err[USERS_ERROR_MAX], a[USERS_LINE_MAX + 2], b[USERS_LINE_MAX + 2];
	struct user u;
	char *text = NULL;

	cr_assert_eq(auth_init(), 0);
	cr_assert_eq(passwd_make_user("alice", "wonderland", USERS_ITER_MIN, &u), 0);
	cr_assert_eq(users_format_line(&u, a, sizeof(a)), 0);
	cr_assert_eq(passwd_make_user("bob", "builder", USERS_ITER_MIN, &u), 0);
	cr_assert_eq(users_format_line(&u, b, sizeof(b)), 0);
	cr_assert_neq(asprintf(&text, "%s%s" RFC_LINE "\n", a, b), -1);
	cr_assert_eq(users_load_string(text, "users", &users, err, sizeof(err)), 0, "%s", err);
	free(text);
}

static void teardown(void)
{
	users_free(users);
	auth_done();
}

TestSuite(auth, .init = setup, .fini = teardown);

/* What went over the wire in one exchange. */
struct transcript {
	char *msg[8];           /* alternating client, server, ... */
	size_t n;
	int server_result;      /* last auth_step result */
	int client_result;      /* last login_step result */
	char user[USERS_NAME_MAX + 1];
	double server_ms;       /* time spent in auth_start and auth_step */
};

static double elapsed_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void transcript_free(struct transcript *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->msg[i]);
}

/* Runs a whole exchange.  replay: if not NULL, sent instead of the
 * client's final message. */
static void run(struct transcript *t, const char *user, const char *password,
		const unsigned char *client_cb, const unsigned char *server_cb, const char *replay)
{
	struct login *l = NULL;
	struct auth *a = NULL;
	char *out = NULL, *in = NULL;
	size_t outlen = 0, inlen = 0;
	struct timespec t0, t1;
	int r;

	memset(t, 0, sizeof(*t));
	cr_assert_eq(login_start(&l, user, password, client_cb, client_cb ? 32 : 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(auth_start(&a, login_mechanism(l), users, server_cb, server_cb ? 32 : 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	t->server_ms += elapsed_ms(&t0, &t1);
	r = login_step(l, NULL, 0, &out, &outlen);
	cr_assert_eq(r, LOGIN_CONTINUE);
	for (;;) {
		if (replay && t->n == 2) {
			free(out);
			out = strdup(replay);
			outlen = strlen(out);
		}
		t->msg[t->n++] = strdup(out);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		r = auth_step(a, out, outlen, &in, &inlen);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		t->server_ms += elapsed_ms(&t0, &t1);
		free(out);
		out = NULL;
		cr_assert_geq(r, 0);
		t->server_result = r;
		if (r == AUTH_FAILURE) {
			cr_assert_null(in);
			break;
		}
		t->msg[t->n++] = strdup(in);
		r = login_step(l, in, inlen, &out, &outlen);
		free(in);
		in = NULL;
		cr_assert_geq(r, 0);
		t->client_result = r;
		if (t->server_result == AUTH_SUCCESS || r != LOGIN_CONTINUE)
			break;
		cr_assert_lt(t->n, 7);
	}
	free(out);
	if (auth_user(a))
		snprintf(t->user, sizeof(t->user), "%s", auth_user(a));
	/* Nothing more after the end. */
	cr_expect_eq(auth_step(a, "x", 1, &in, &inlen), AUTH_FAILURE);
	cr_expect_null(in);
	cr_expect_null(auth_user(a));
	auth_free(a);
	login_free(l);
}

Test(auth, plain_exchange_succeeds)
{
	struct transcript t;

	run(&t, "alice", "wonderland", NULL, NULL, NULL);
	cr_expect_eq(t.server_result, AUTH_SUCCESS);
	cr_expect_eq(t.client_result, LOGIN_SUCCESS);
	cr_expect_str_eq(t.user, "alice");
	cr_expect_eq(t.n, 4);
	cr_expect(strncmp(t.msg[0], "n,,n=alice,r=", 13) == 0, "%s", t.msg[0]);
	cr_expect(strncmp(t.msg[3], "v=", 2) == 0, "%s", t.msg[3]);
	transcript_free(&t);
}

Test(auth, plus_exchange_succeeds)
{
	struct transcript t;

	run(&t, "bob", "builder", cb_a, cb_a, NULL);
	cr_expect_eq(t.server_result, AUTH_SUCCESS);
	cr_expect_eq(t.client_result, LOGIN_SUCCESS);
	cr_expect_str_eq(t.user, "bob");
	cr_expect(strncmp(t.msg[0], "p=tls-exporter,,n=bob,r=", 24) == 0, "%s", t.msg[0]);
	transcript_free(&t);
}

/* Shape of server-first: r=NONCE,s=SALT,i=ITER with the salt's length and
 * the iteration count, not the values. */
static void server_first_shape(const char *msg, size_t *saltlen, char *iter, size_t cap)
{
	const char *s = strstr(msg, ",s="), *i = strstr(msg, ",i=");

	cr_assert(strncmp(msg, "r=", 2) == 0 && s && i && i > s, "%s", msg);
	*saltlen = (size_t)(i - s - 3);
	snprintf(iter, cap, "%s", i + 3);
}

Test(auth, wrong_password_and_unknown_user_fail_alike)
{
	struct transcript wrong, unknown, unknown2, other;
	size_t sl_wrong, sl_unknown;
	char it_wrong[16], it_unknown[16];
	const char *s1, *s2;

	run(&wrong, "alice", "looking-glass", NULL, NULL, NULL);
	run(&unknown, "mallory", "looking-glass", NULL, NULL, NULL);
	cr_expect_eq(wrong.server_result, AUTH_FAILURE);
	cr_expect_eq(unknown.server_result, AUTH_FAILURE);
	cr_expect_str_eq(wrong.user, "");
	cr_expect_str_eq(unknown.user, "");
	/* client-first, server-first, client-final, then the failure. */
	cr_expect_eq(wrong.n, 3);
	cr_expect_eq(unknown.n, 3);
	server_first_shape(wrong.msg[1], &sl_wrong, it_wrong, sizeof(it_wrong));
	server_first_shape(unknown.msg[1], &sl_unknown, it_unknown, sizeof(it_unknown));
	cr_expect_eq(sl_wrong, sl_unknown);
	cr_expect_str_eq(it_wrong, it_unknown);
	cr_expect_eq(strlen(wrong.msg[1]), strlen(unknown.msg[1]));

	/* The made-up salt is the same for a name on every connection, and
	 * differs between names. */
	run(&unknown2, "mallory", "other", NULL, NULL, NULL);
	run(&other, "trudy", "other", NULL, NULL, NULL);
	s1 = strstr(unknown.msg[1], ",s=");
	s2 = strstr(unknown2.msg[1], ",s=");
	cr_expect_str_eq(s1, s2);
	cr_expect_str_neq(strstr(other.msg[1], ",s="), s1);
	transcript_free(&wrong);
	transcript_free(&unknown);
	transcript_free(&unknown2);
	transcript_free(&other);
}

Test(auth, failure_reasons_stay_on_the_server)
{
	struct auth *a = NULL;
	char *out = NULL;
	size_t outlen;

	cr_assert_eq(auth_start(&a, AUTH_MECH_SCRAM, users, NULL, 0), 0);
	cr_expect_null(auth_failure_reason(a));
	cr_expect_eq(auth_step(a, "garbage", 7, &out, &outlen), AUTH_FAILURE);
	cr_expect_null(out);
	cr_expect_str_eq(auth_failure_reason(a), "malformed SCRAM message");
	auth_free(a);
	auth_free(NULL);
}

Test(auth, replayed_client_final_fails)
{
	struct transcript first, replay;

	run(&first, "alice", "wonderland", NULL, NULL, NULL);
	cr_assert_eq(first.server_result, AUTH_SUCCESS);
	run(&replay, "alice", "wonderland", NULL, NULL, first.msg[2]);
	cr_expect_eq(replay.server_result, AUTH_FAILURE);
	cr_expect_str_eq(replay.user, "");
	transcript_free(&first);
	transcript_free(&replay);
}

Test(auth, mismatching_channel_binding_fails)
{
	struct transcript t;

	run(&t, "alice", "wonderland", cb_b, cb_a, NULL);
	cr_expect_eq(t.server_result, AUTH_FAILURE);
	cr_expect_eq(t.n, 3);
	transcript_free(&t);
}

Test(auth, mechanism_must_match_the_connection)
{
	struct auth *a = NULL;

	/* TLS: only -PLUS; a client asking for plain SCRAM is refused. */
	cr_expect_eq(auth_start(&a, AUTH_MECH_SCRAM, users, cb_a, 32), -EPROTONOSUPPORT);
	/* Plain TCP: no -PLUS without channel binding data. */
	cr_expect_eq(auth_start(&a, AUTH_MECH_SCRAM_PLUS, users, NULL, 0), -EPROTONOSUPPORT);
	cr_expect_eq(auth_start(&a, "PLAIN", users, NULL, 0), -EPROTONOSUPPORT);
	cr_expect_eq(auth_start(&a, NULL, users, NULL, 0), -EPROTONOSUPPORT);
	cr_expect_null(a);
	cr_expect_str_eq(auth_mechanism(true), "SCRAM-SHA-256-PLUS");
	cr_expect_str_eq(auth_mechanism(false), "SCRAM-SHA-256");
}

Test(auth, client_without_binding_on_a_plus_server_is_refused)
{
	struct login *l = NULL;
	struct auth *a = NULL;
	char *out = NULL, *in = NULL;
	size_t outlen, inlen;

	/* A downgraded client (no channel binding) forced onto the -PLUS
	 * exchange sends "n,," and is refused at its first message. */
	cr_assert_eq(login_start(&l, "alice", "wonderland", NULL, 0), 0);
	cr_assert_eq(auth_start(&a, AUTH_MECH_SCRAM_PLUS, users, cb_a, 32), 0);
	cr_assert_eq(login_step(l, NULL, 0, &out, &outlen), LOGIN_CONTINUE);
	cr_expect_eq(auth_step(a, out, outlen, &in, &inlen), AUTH_FAILURE);
	free(out);
	auth_free(a);
	login_free(l);
}

Test(auth, client_rejects_a_wrong_server_signature)
{
	struct login *l = NULL;
	struct auth *a = NULL;
	char *out = NULL, *in = NULL;
	size_t outlen, inlen;

	cr_assert_eq(login_start(&l, "alice", "wonderland", NULL, 0), 0);
	cr_assert_eq(auth_start(&a, AUTH_MECH_SCRAM, users, NULL, 0), 0);
	cr_assert_eq(login_step(l, NULL, 0, &out, &outlen), LOGIN_CONTINUE);
	cr_assert_eq(auth_step(a, out, outlen, &in, &inlen), AUTH_CONTINUE);
	free(out);
	cr_assert_eq(login_step(l, in, inlen, &out, &outlen), LOGIN_CONTINUE);
	free(in);
	cr_assert_eq(auth_step(a, out, outlen, &in, &inlen), AUTH_SUCCESS);
	free(out);
	in[2] = in[2] == 'A' ? 'B' : 'A';
	cr_expect_eq(login_step(l, in, inlen, &out, &outlen), LOGIN_FAILURE);
	cr_expect_null(out);
	free(in);
	auth_free(a);
	login_free(l);
}

/* ---- An independent SCRAM-SHA-256 client on OpenSSL, for the RFC ---- */

static void b64_decode(const char *s, unsigned char *out, size_t want)
{
	unsigned char buf[128];
	int n = EVP_DecodeBlock(buf, (const unsigned char *)s, (int)strlen(s));

	cr_assert_geq(n, (int)want, "base64 %s", s);
	memcpy(out, buf, want);
}

static void b64_encode(const unsigned char *in, size_t len, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static void hmac256(const unsigned char *key, size_t keylen, const char *msg, unsigned char out[32])
{
	unsigned int len = 0;

	cr_assert_not_null(HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg,
				strlen(msg), out, &len));
	cr_assert_eq(len, 32);
}

/* RFC 5802's key derivation on OpenSSL's PBKDF2, HMAC and SHA-256. */
static void derive(const char *password, const unsigned char *salt, size_t saltlen,
		   unsigned iter, unsigned char client_key[32], unsigned char stored[32],
		   unsigned char server[32])
{
	unsigned char salted[32];

	cr_assert_eq(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen,
				       (int)iter, EVP_sha256(), 32, salted), 1);
	hmac256(salted, 32, "Client Key", client_key);
	hmac256(salted, 32, "Server Key", server);
	cr_assert_not_null(EVP_Digest(client_key, 32, stored, NULL, EVP_sha256(), NULL));
}

/* client-final-without-proof and its proof, and the expected server
 * signature, for an AuthMessage. */
static void prove(const unsigned char client_key[32], const unsigned char stored[32],
		  const unsigned char server[32], const char *auth_message,
		  char proof_b64[64], char sig_b64[64])
{
	unsigned char sig[32], proof[32];
	size_t i;

	hmac256(stored, 32, auth_message, sig);
	for (i = 0; i < 32; i++)
		proof[i] = client_key[i] ^ sig[i];
	b64_encode(proof, 32, proof_b64);
	hmac256(server, 32, auth_message, sig);
	b64_encode(sig, 32, sig_b64);
}

Test(auth, rfc7677_vector_through_the_verifier)
{
	static const char cfb[] = "n=user,r=rOprNGfwEbeRWgbNEkqO";
	static const char sf[] = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
				 "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
	static const char cfwp[] = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
	const struct user *u = users_find(users, "user");
	unsigned char salt[16], ck[32], stored[32], server[32], key[32];
	char proof[64], sig[64], *am = NULL;

	cr_assert_not_null(u);
	/* 1. The loaded verifier is what PBKDF2 gives for "pencil". */
	b64_decode(u->salt, salt, 16);
	derive("pencil", salt, 16, u->iterations, ck, stored, server);
	b64_decode(u->stored_key, key, 32);
	cr_expect_eq(memcmp(key, stored, 32), 0, "StoredKey");
	b64_decode(u->server_key, key, 32);
	cr_expect_eq(memcmp(key, server, 32), 0, "ServerKey");

	/* 2. With the RFC's nonces, that verifier gives the RFC's proof and
	 * server signature. */
	cr_assert_neq(asprintf(&am, "%s,%s,%s", cfb, sf, cfwp), -1);
	prove(ck, stored, server, am, proof, sig);
	cr_expect_str_eq(proof, "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
	cr_expect_str_eq(sig, "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
	free(am);
}

Test(auth, rfc7677_client_against_the_server)
{
	/* GNU SASL picks its own server nonce, so drive the server with the
	 * RFC's client-first and compute client-final independently. */
	static const char cf[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
	unsigned char salt[16], ck[32], stored[32], server[32];
	char proof[64], sig[64], *am = NULL, *cfinal = NULL, *cfwp = NULL, *nonce;
	char *sf = NULL, *sfinal = NULL, *comma;
	size_t sflen, sfinallen;
	struct auth *a = NULL;

	cr_assert_eq(auth_start(&a, AUTH_MECH_SCRAM, users, NULL, 0), 0);
	cr_assert_eq(auth_step(a, cf, strlen(cf), &sf, &sflen), AUTH_CONTINUE);
	cr_assert(strncmp(sf, "r=rOprNGfwEbeRWgbNEkqO", 22) == 0, "%s", sf);
	cr_expect_not_null(strstr(sf, ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"), "%s", sf);
	nonce = strndup(sf + 2, strcspn(sf + 2, ","));
	b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", salt, 16);
	derive("pencil", salt, 16, 4096, ck, stored, server);
	cr_assert_neq(asprintf(&cfwp, "c=biws,r=%s", nonce), -1);
	cr_assert_neq(asprintf(&am, "%s,%s,%s", cf + 3, sf, cfwp), -1);
	prove(ck, stored, server, am, proof, sig);
	cr_assert_neq(asprintf(&cfinal, "%s,p=%s", cfwp, proof), -1);
	cr_assert_eq(auth_step(a, cfinal, strlen(cfinal), &sfinal, &sfinallen), AUTH_SUCCESS,
		     "%s", auth_failure_reason(a));
	comma = strchr(sfinal, ',');
	cr_expect_null(comma);
	cr_expect(strncmp(sfinal, "v=", 2) == 0 && strcmp(sfinal + 2, sig) == 0,
		  "server-final %s, expected v=%s", sfinal, sig);
	cr_expect_str_eq(auth_user(a), "user");
	free(nonce);
	free(cfwp);
	free(am);
	free(cfinal);
	free(sf);
	free(sfinal);
	auth_free(a);
}

Test(auth, authzid_other_than_the_user_fails)
{
	static const char cf[] = "n,a=bob,n=user,r=abcdefghijklmnop";
	unsigned char salt[16], ck[32], stored[32], server[32];
	char proof[64], sig[64], *am = NULL, *cfinal = NULL, *cfwp = NULL, *nonce;
	char *sf = NULL, *sfinal = NULL;
	size_t sflen, sfinallen;
	struct auth *a = NULL;

	cr_assert_eq(auth_start(&a, AUTH_MECH_SCRAM, users, NULL, 0), 0);
	cr_assert_eq(auth_step(a, cf, strlen(cf), &sf, &sflen), AUTH_CONTINUE);
	/* The made-up salt, not the user's. */
	cr_expect_null(strstr(sf, "W22ZaJ0SNY7soEsUEjb6gQ=="), "%s", sf);
	nonce = strndup(sf + 2, strcspn(sf + 2, ","));
	b64_decode("W22ZaJ0SNY7soEsUEjb6gQ==", salt, 16);
	derive("pencil", salt, 16, 4096, ck, stored, server);
	cr_assert_neq(asprintf(&cfwp, "c=bixhPWJvYiw=,r=%s", nonce), -1);
	cr_assert_neq(asprintf(&am, "%s,%s,%s", strstr(cf, "n=user"), sf, cfwp), -1);
	prove(ck, stored, server, am, proof, sig);
	cr_assert_neq(asprintf(&cfinal, "%s,p=%s", cfwp, proof), -1);
	cr_expect_eq(auth_step(a, cfinal, strlen(cfinal), &sfinal, &sfinallen), AUTH_FAILURE);
	cr_expect_null(auth_user(a));
	free(nonce);
	free(cfwp);
	free(am);
	free(cfinal);
	free(sf);
	auth_free(a);
}

/* The cost of a login at the default iteration count, both ends. */
Test(auth, login_cost_at_the_default_iterations)
{
	char err[USERS_ERROR_MAX], line[USERS_LINE_MAX + 2];
	struct users *saved = users;
	struct timespec t0, t1;
	struct transcript t;
	struct user u;

	cr_assert_eq(passwd_make_user("carol", "correct horse", PASSWD_ITERATIONS_DEFAULT, &u), 0);
	cr_assert_eq(users_format_line(&u, line, sizeof(line)), 0);
	cr_assert_eq(users_load_string(line, "users", &users, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run(&t, "carol", "correct horse", cb_a, cb_a, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_expect_eq(t.server_result, AUTH_SUCCESS);
	cr_expect_eq(t.client_result, LOGIN_SUCCESS);
	fprintf(stderr, "login at %d iterations: %.1f ms in all, %.3f ms of it on the server\n",
		PASSWD_ITERATIONS_DEFAULT, elapsed_ms(&t0, &t1), t.server_ms);
	transcript_free(&t);
	users_free(users);
	users = saved;
}
