/* sha256: SHA-256 through OpenSSL's EVP interface. */
#include "sha256.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

/* struct sha256 is never defined: the pointer is an EVP_MD_CTX. */
static EVP_MD_CTX *sha256_md(struct sha256 *s)
{
	return (EVP_MD_CTX *)s;
}

int sha256_new(struct sha256 **out)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	*out = NULL;
	if (!md)
		return -ENOMEM;
	/* OpenSSL only fails here when it cannot allocate or load the
	 * provider; neither is the caller's fault. */
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return -ENOMEM;
	}
	*out = (struct sha256 *)md;
	return 0;
}

int sha256_update(struct sha256 *s, const void *data, size_t len)
{
	return EVP_DigestUpdate(sha256_md(s), data, len) == 1 ? 0 : -EIO;
}

int sha256_final(struct sha256 *s, uint8_t out[SHA256_BYTES])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (EVP_DigestFinal_ex(sha256_md(s), md, &md_len) != 1 || md_len != SHA256_BYTES)
		return -EIO;
	memcpy(out, md, SHA256_BYTES);
	return 0;
}

void sha256_free(struct sha256 *s)
{
	EVP_MD_CTX_free(sha256_md(s));
}
