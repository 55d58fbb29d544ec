/* stub */
typedef int progress_placeholder;
