"""The local CDP stand-in: the Stream API's auth, validation and answers, with admin and faults."""
