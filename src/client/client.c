/* stub */
typedef int client_placeholder;
