"""Distribution losses: ``forward(student_logits, teacher_logits)`` comparing two categorical distributions."""
