"""The live page at ``/``: static HTML/JS/CSS, plotly.js from the installed ``plotly`` wheel,
and a server-sent-events stream of new evaluations and accepted versions."""
