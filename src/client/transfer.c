/* stub */
typedef int transfer_placeholder;
