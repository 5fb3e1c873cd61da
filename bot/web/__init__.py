"""The operators' web console: one more face of the bot, served by `cohortbot run` in its own
process and event loop (bot/web/serve.py). It reads through storage/repo/ and acts through
the operator commands of bot/operator_commands.py, so a pause from the web is the same pause,
written to the same audit log, as one sent from WeChat.

- auth.py: passwords (argon2), the login rate limit, CSRF tokens.
- views.py: what the pages show, read from the database and the running cohorts.
- app.py: the Starlette app, its routes and templates.
- serve.py: uvicorn in the bot's loop, started after the bot and stopped before it.
"""
