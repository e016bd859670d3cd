"""The private MariaDB instance of the local stack.

Everything lives under the state directory: data directory, socket, pid file and logs, and the
generated root password (mode 0600). The server binds to the configured host only and ignores
every system option file (``--no-defaults``), so a developer's own MariaDB, its my.cnf and port
3306 are never touched.

Root never exists without its password on a server that accepts connections. mariadb-install-db
creates root without one, so the password is set offline, by ``mariadbd --bootstrap
--skip-networking`` reading SQL from a pipe (no TCP port, no socket; the password on no command
line and in no file but ``mariadb.password``), before the server is ever started.
``SECURED_MARKER`` in the data directory records that this was done: a new data directory is made
under ``mariadb.new`` and renamed into place only with root's password and the marker in it, and
``start`` refuses to launch a server on a data directory without the marker until ``secure`` has
set the password. An ``up`` interrupted at any point therefore leaves either no data directory
(the next ``up`` redoes it) or a secured one.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pymysql
from pymysql.converters import escape_string

from matchstream.config import Config, ConfigError
from matchstream.stack.errors import ComponentStartError, MissingBinaryError
from matchstream.stack.ports import port_answers
from matchstream.stack.process import ManagedProcess

__all__ = ["MariaDB", "mask"]

INSTALL_HINT = "sudo apt-get install mariadb-server   (or run ./setup.sh, which does it)"
# Where Debian puts the server; it is not on a normal user's PATH.
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin")
# The accounts mariadb-install-db creates for root; all get the generated password so that
# TCP clients (127.0.0.1, ::1) and socket clients (localhost) agree.
ROOT_HOSTS = ("localhost", "127.0.0.1", "::1")
ACCESS_DENIED = 1045
# Written into the data directory once root has its password (see the module's docstring).
SECURED_MARKER = "matchstream-secured"
# InnoDB sizing shared by the bootstrap and the server, so neither resizes the other's redo log.
INNODB_ARGS = ("--innodb-buffer-pool-size=256M", "--innodb-log-file-size=128M")


def mask(secret: str) -> str:
    """Show just enough of a secret to tell two apart, never the whole of it."""
    return secret[:2] + "*" * 8 if len(secret) > 4 else "*" * 8


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) mode 0700, and make an existing one 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _which(name: str, bin_dir: str = "") -> str | None:
    if bin_dir:
        candidate = os.path.join(bin_dir, name)
        return candidate if os.access(candidate, os.X_OK) else None
    found = shutil.which(name)
    if found:
        return found
    for folder in SBIN_DIRS:
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class MariaDB:
    name = "mariadb"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.process = ManagedProcess(self.name, config.run_dir, config.log_dir)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.config.db_port}"

    def server_binary(self) -> str:
        where = self.config.db_bin_dir
        found = _which("mariadbd", where) or _which("mysqld", where)
        if not found:
            raise MissingBinaryError(binary="mariadbd", install_hint=INSTALL_HINT)
        return found

    def install_binary(self) -> str:
        where = self.config.db_bin_dir
        found = _which("mariadb-install-db", where) or _which("mysql_install_db", where)
        if not found:
            raise MissingBinaryError(binary="mariadb-install-db", install_hint=INSTALL_HINT)
        return found

    def _user_args(self) -> list[str]:
        # mariadbd refuses to run as root unless told to; for anyone else --user is not needed.
        return ["--user=root"] if os.geteuid() == 0 else []

    def secured(self) -> bool:
        """True when the data directory is marked as having root's password."""
        return (self.config.db_dir / SECURED_MARKER).is_file()

    def initialise(self) -> bool:
        """1. Create the data directory once, root's password included. True when created now.

        The directory is made as ``<db_dir>.new`` and renamed into place only once root has its
        password and the marker is written; a leftover ``.new`` (an interrupted ``up``) was never
        served and is made again.
        """
        data = self.config.db_dir
        if (data / "mysql").is_dir():
            return False
        if data.exists() and any(data.iterdir()):
            raise ComponentStartError(
                component=self.name,
                reason=f"{data} exists but holds no MariaDB data directory: move it away",
                log_path=None,
            )
        fresh = data.with_name(data.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(mode=0o700)
        argv = [
            self.install_binary(),
            "--no-defaults",
            f"--datadir={fresh}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._user_args(),
        ]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
            if result.returncode != 0:
                raise ComponentStartError(
                    component=self.name,
                    reason="mariadb-install-db failed",
                    log_path=None,
                    log_tail=(result.stdout + result.stderr)[-2000:],
                )
            self._set_password_offline(fresh)
            if data.exists():
                data.rmdir()  # empty, checked above
            os.rename(fresh, data)
            _fsync_dir(data.parent)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)  # a half-made data directory would stick
            raise
        return True

    def secure(self) -> None:
        """2. Make sure root has the generated password before the server ever listens.

        A data directory without the marker (made by an older matchstream, which set the
        password only after the server was listening, possibly interrupted before it did) gets
        the password offline now. The server must not be running.
        """
        if self.secured():
            if not self.config.db_password_file.exists():
                raise self._password_rejected()
            return
        self._set_password_offline(self.config.db_dir)

    def _password(self) -> str:
        """The generated password, created (mode 0600) if there is none yet.

        The file is written before the server is told, so a crash in between leaves a file that
        the next ``up`` applies again instead of a lost password.
        """
        pw_file = self.config.db_password_file
        if not pw_file.exists():
            pw_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24) + "\n")
                out.flush()
                os.fsync(out.fileno())
        password = pw_file.read_text().strip()
        if not password:  # would make root passwordless
            raise ComponentStartError(
                component=self.name, reason=f"{pw_file} is empty: remove it", log_path=None
            )
        return password

    def _secure_sql(self, password: str) -> str:
        pw = escape_string(password)
        hosts = ", ".join(f"'{h}'" for h in ROOT_HOSTS)
        lines = [
            # --bootstrap starts without the grant tables; ALTER USER needs them loaded.
            "FLUSH PRIVILEGES;",
            # Accounts for the machine's host name are useless with --skip-name-resolve and
            # would keep an empty password; anonymous accounts would let anyone in.
            "SET @extra = (SELECT GROUP_CONCAT(CONCAT(QUOTE(`User`), '@', QUOTE(`Host`))) "
            f"FROM mysql.global_priv WHERE (`User` = 'root' AND `Host` NOT IN ({hosts})) "
            "OR `User` = '');",
            "EXECUTE IMMEDIATE IF(@extra IS NULL, 'DO 0', CONCAT('DROP USER ', @extra));",
        ]
        for host in ROOT_HOSTS:
            lines += [
                f"CREATE USER IF NOT EXISTS 'root'@'{host}' IDENTIFIED BY '{pw}';",
                f"ALTER USER 'root'@'{host}' IDENTIFIED BY '{pw}';",
                f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{host}' WITH GRANT OPTION;",
            ]
        return "\n".join(lines) + "\n"

    def _set_password_offline(self, data: Path) -> None:
        """Give every root account the generated password with the server offline, then mark
        ``data`` as secured.

        ``mariadbd --bootstrap`` runs the SQL from its stdin and exits; with --skip-networking
        and a socket path in the 0700 run directory nothing can connect to it meanwhile. The
        password goes through the pipe only: not on a command line, not in a file, and the
        output shown on failure has it masked.
        """
        password = self._password()
        _private_dir(self.config.run_dir)
        argv = [
            self.server_binary(),
            "--no-defaults",
            f"--datadir={data}",
            "--bootstrap",
            "--skip-networking",
            f"--socket={self.config.run_dir / 'mariadb-bootstrap.sock'}",
            "--log-warnings=0",
            *INNODB_ARGS,
            *self._user_args(),
        ]
        result = subprocess.run(  # noqa: S603 - argv is ours, the SQL goes through stdin
            argv, input=self._secure_sql(password), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).replace(password, mask(password))
            raise ComponentStartError(
                component=self.name,
                reason=f"could not set the root password in {data} (mariadbd --bootstrap)",
                log_path=None,
                log_tail=output[-2000:],
            )
        marker = data / SECURED_MARKER
        with open(marker, "w") as out:
            out.write("root has the password of the state directory's mariadb.password\n")
            out.flush()
            os.fsync(out.fileno())
        _fsync_dir(data)

    def argv(self) -> list[str]:
        c = self.config
        return [
            self.server_binary(),
            "--no-defaults",
            f"--datadir={c.db_dir}",
            f"--socket={c.db_socket}",
            f"--port={c.db_port}",
            f"--bind-address={c.host}",
            f"--pid-file={c.run_dir / 'mariadbd.pid'}",
            "--skip-name-resolve",
            # The pipeline engine loads batches with LOAD DATA LOCAL INFILE.
            "--local-infile=1",
            # A developer machine, not a server: keep memory small and start fast.
            *INNODB_ARGS,
            "--max-connections=200",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
            # Transaction-consistent reads of cursors and rows, as SingleStore gives its readers.
            "--transaction-isolation=READ-COMMITTED",
            *self._user_args(),
        ]

    def start(self) -> None:
        """3. Start the server, never on a data directory whose root lacks the password."""
        self.secure()
        if not self.secured():  # secure() either marks the directory or raises
            raise ComponentStartError(
                component=self.name, reason=f"{self.config.db_dir} is not secured", log_path=None
            )
        _private_dir(self.config.run_dir)  # the socket's directory: only its owner gets in
        self.process.start(self.argv())

    def _socket_connect(self, password: str) -> pymysql.Connection:
        return pymysql.connect(
            unix_socket=str(self.config.db_socket),
            user="root",
            password=password,
            connect_timeout=2,
        )

    def _password_rejected(self) -> ComponentStartError:
        return ComponentStartError(
            component=self.name,
            reason=(
                f"the server in {self.config.db_dir} rejects the root password in "
                f"{self.config.db_password_file} (was the file lost or replaced?): restore it, "
                f"or remove {self.config.db_dir} to start with an empty database"
            ),
            log_path=None,
        )

    def wait_ready(self) -> None:
        """4. Wait until the socket accepts a connection with the password.

        A server that answers but refuses every password we know will not change its mind:
        stop it and say so, instead of waiting for the timeout.
        """
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self.config.db_socket.exists():
                try:
                    self._socket_connect(self.config.db_password()).close()
                    return
                except (pymysql.err.OperationalError, ConfigError) as exc:
                    if isinstance(exc, ConfigError) or exc.args[:1] == (ACCESS_DENIED,):
                        self.process.stop()
                        raise self._password_rejected() from exc
            if self.process.exited_early():
                break
            time.sleep(0.2)
        raise ComponentStartError(
            component=self.name,
            reason=f"no answer on {self.config.db_socket}",
            log_path=self.process.log_file,
            log_tail=self.process.log_tail(),
        )

    def answers(self) -> bool:
        """True when ``SELECT 1`` succeeds over TCP with the generated password."""
        if not port_answers(self.config.host, self.config.db_port):
            return False
        try:
            conn = pymysql.connect(
                host=self.config.host,
                port=self.config.db_port,
                user=self.config.db_user,
                password=self.config.db_password(),
                connect_timeout=2,
            )
        except Exception:  # noqa: BLE001 - any failure means "not answering"
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                return cur.fetchone() == (1,)
        finally:
            conn.close()

    def write_client_file(self) -> None:
        """5. A mysql option file (mode 0600) with address, user and password: the client reads
        the password from it, so it never shows in a command line (``ps``) or shell history."""
        c = self.config
        target = c.db_client_file
        tmp = target.with_suffix(".tmp")
        # A fresh file only: never write the password through a leftover or a planted symlink.
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(
                "[client]\n"
                f"host={c.host}\nport={c.db_port}\nuser={c.db_user}\n"
                f"password={c.db_password()}\n"
            )
        os.replace(tmp, target)

    def connect_hint(self) -> str:
        return f"mysql --defaults-extra-file={self.config.db_client_file}"
