/* stub */
typedef int harness_placeholder;
