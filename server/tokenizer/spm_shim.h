/* The C interface of libmcserve_spm.so, the shim that holds
 * libsentencepiece (spm_processor.h says why it is loaded apart). Plain C
 * types only: the shim lives in its own link namespace, with its own C and
 * C++ runtimes, so nothing it allocates may be freed here but through
 * mcserve_spm_free, and no C++ object crosses. */
#ifndef MCSERVE_SERVER_TOKENIZER_SPM_SHIM_H_
#define MCSERVE_SERVER_TOKENIZER_SPM_SHIM_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct McserveSpm McserveSpm;

/* Piece types, a bit mask (mcserve_spm_piece_type). */
enum {
  MCSERVE_SPM_CONTROL = 1,
  MCSERVE_SPM_UNKNOWN = 2,
  MCSERVE_SPM_UNUSED = 4,
  MCSERVE_SPM_BYTE = 8
};

/* Loads the model at `path`; null on failure, with *code (an
 * absl::StatusCode value) and *error (free with mcserve_spm_free). */
McserveSpm* mcserve_spm_load(const char* path, int* code, char** error);
void mcserve_spm_destroy(McserveSpm* spm);
int mcserve_spm_piece_size(const McserveSpm* spm);
/* The piece's bytes, owned by the model (valid until destroy). */
const char* mcserve_spm_piece(const McserveSpm* spm, int id, size_t* len);
int mcserve_spm_piece_type(const McserveSpm* spm, int id);
int mcserve_spm_piece_to_id(const McserveSpm* spm, const char* piece, size_t len);
/* -1 when the model has none. */
int mcserve_spm_bos_id(const McserveSpm* spm);
int mcserve_spm_eos_id(const McserveSpm* spm);
int mcserve_spm_unk_id(const McserveSpm* spm);
/* Return 0 (ok) or an absl::StatusCode value with *error set. Outputs are
 * allocated by the shim: free them with mcserve_spm_free. */
int mcserve_spm_encode(const McserveSpm* spm, const char* text, size_t len, int** ids, size_t* n,
                       char** error);
int mcserve_spm_decode(const McserveSpm* spm, const int* ids, size_t n, char** text, size_t* len,
                       char** error);
void mcserve_spm_free(void* p);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // MCSERVE_SERVER_TOKENIZER_SPM_SHIM_H_
