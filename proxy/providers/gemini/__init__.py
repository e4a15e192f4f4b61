"""Google's Gemini API (AI Studio), and the translation Vertex AI's Gemini models share."""
