-- The backup target's status.json (newest full, incremental and binlog, failures, checks),
-- published here by the database Pi's backup tool (assets/backup/pi-cluster-backup.sh,
-- publish_status) without binlogging, so the app can serve it as lastBackup: the web
-- servers reach the database, never the backup target. One row, id 1.
CREATE TABLE IF NOT EXISTS backup_status (
    id TINYINT UNSIGNED NOT NULL PRIMARY KEY,
    status LONGTEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
