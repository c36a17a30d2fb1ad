"""UnSTAR: self-taught anti-sample unlearning of question-answer associations."""
