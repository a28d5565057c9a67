"""A small built-in corpus for ``bge-integrations demo``: facts and the questions they answer."""

from __future__ import annotations

PASSAGES: tuple[str, ...] = (
    "The giant panda is a bear species endemic to China, living in mountain forests of Sichuan, Shaanxi and Gansu.",
    "Pandas eat almost nothing but bamboo, up to 38 kilograms a day.",
    "Paris is the capital and most populous city of France, on the river Seine.",
    "The Eiffel Tower was built for the 1889 World's Fair in Paris.",
    "Mitochondria produce most of the chemical energy (ATP) that a cell needs.",
    "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen in chloroplasts.",
    "BGE (BAAI General Embedding) models map text to dense vectors for retrieval.",
    "A cross-encoder reads the query and the passage together and outputs one relevance score.",
    "Retrieval-augmented generation grounds a language model's answer in retrieved documents.",
    "Vitamin D is made in the skin under sunlight; deficiency is common at northern latitudes.",
    "The Great Wall of China stretches over 21,000 kilometres across northern China.",
    "Python was created by Guido van Rossum and first released in 1991.",
)

QUERIES: tuple[str, ...] = (
    "Where do giant pandas live?",
    "What does a reranker do?",
    "Which organelle produces energy for the cell?",
)

__all__ = ["PASSAGES", "QUERIES"]
