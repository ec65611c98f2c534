"""随手拍 photo reports in chat: the resident's /report flow, dispatch cards, rating, lists, ticks."""
